"""The body rules, and the ASGI guard that applies them before the application reads a body."""

import json

import pytest
from asgiref.testing import ApplicationCommunicator
from django.urls import reverse

from companionhub.body_limits import FORM_OVERHEAD, UPLOAD_VIEWS, BodyLimitMiddleware, rule_for

SMALL = 1000


@pytest.fixture(autouse=True)
def _small_limits(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = SMALL
    settings.IMAGE_MAX_BYTES = 4000


class RecordingApp:
    """An ASGI app that reads the whole body, then answers 200; it records what it received."""

    def __init__(self) -> None:
        self.called = False
        self.messages: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        self.called = True
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        if self.messages[-1]["type"] == "http.disconnect":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read"})


def http_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "method": "POST", "path": path, "root_path": "", "headers": headers}


async def run(path, headers, chunks) -> tuple[RecordingApp, int, bytes]:
    app = RecordingApp()
    communicator = ApplicationCommunicator(BodyLimitMiddleware(app), http_scope(path, headers))
    for n, chunk in enumerate(chunks):
        await communicator.send_input(
            {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
        )
    start = await communicator.receive_output(timeout=5)
    body = await communicator.receive_output(timeout=5)
    await communicator.wait(timeout=5)
    return app, start["status"], body["body"]


def import_url() -> str:
    return reverse("companions:card_import")


def test_upload_urls_take_a_picture_plus_the_form_and_the_rest_takes_little():
    assert rule_for(import_url()).limit == 4000 + FORM_OVERHEAD
    assert rule_for(import_url()).takes_uploads
    assert rule_for("/").limit == SMALL
    assert not rule_for("/").takes_uploads
    assert not rule_for("/no/such/page/").takes_uploads
    no_args = {"companions:card_import", "admin:chat_samplerpreset_import", "chat:import", "lorebooks:import"}
    for name in UPLOAD_VIEWS:  # every name is a real URL
        assert rule_for(reverse(name, args=[] if name in no_args else [1])).takes_uploads


async def test_a_declared_oversize_body_is_refused_without_calling_the_application():
    app, status, body = await run("/", [(b"content-length", b"1001")], [b""])
    assert status == 413
    assert b"too large" in body
    assert not app.called


async def test_an_oversize_upload_is_refused_with_the_picture_limit(settings):
    settings.IMAGE_MAX_BYTES = 1024 * 1024
    length = str(settings.IMAGE_MAX_BYTES + FORM_OVERHEAD + 1).encode()
    headers = [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", length)]
    app, status, body = await run(import_url(), headers, [b""])
    assert (status, app.called) == (413, False)
    assert b"at most 1 MB" in body


async def test_multipart_is_refused_where_nothing_is_uploaded():
    headers = [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", b"10")]
    app, status, _ = await run("/accounts/login/", headers, [b"0123456789"])
    assert (status, app.called) == (415, False)


async def test_a_streamed_body_is_cut_at_the_limit():
    # No Content-Length (chunked): counted as it arrives; the application is told the client left.
    app, status, body = await run("/", [(b"content-type", b"text/plain")], [b"x" * 600, b"x" * 600, b"x"])
    assert status == 413
    assert b"too large" in body
    assert app.messages[-1] == {"type": "http.disconnect"}
    assert sum(len(m.get("body", b"")) for m in app.messages) == 600


async def test_bodies_within_the_limit_reach_the_application_whole():
    headers = [(b"content-type", b"multipart/form-data; boundary=x")]
    app, status, body = await run(import_url(), headers, [b"a" * 3000, b"b" * 3000])
    assert (status, body) == (200, b"read")
    assert b"".join(m["body"] for m in app.messages) == b"a" * 3000 + b"b" * 3000


async def test_websockets_pass_untouched():
    app_scopes = []

    async def app(scope, receive, send):
        app_scopes.append(scope["type"])

    communicator = ApplicationCommunicator(BodyLimitMiddleware(app), {"type": "websocket", "path": "/"})
    await communicator.wait(timeout=5)
    assert app_scopes == ["websocket"]


async def test_the_voice_upload_takes_multipart_up_to_its_limit_and_refuses_more_as_json(settings):
    settings.VOICE_UPLOAD_MAX_BYTES = 2 * 1024 * 1024
    url = reverse("chat:transcribe")
    rule = rule_for(url)
    assert rule.takes_uploads and rule.limit == settings.VOICE_UPLOAD_MAX_BYTES + FORM_OVERHEAD
    multipart = (b"content-type", b"multipart/form-data; boundary=x")
    app, status, _ = await run(url, [multipart, (b"content-length", b"10")], [b"0123456789"])
    assert (status, app.called) == (200, True)
    too_long = str(rule.limit + 1).encode()
    app, status, body = await run(url, [multipart, (b"content-length", too_long)], [b""])
    assert (status, app.called) == (413, False)
    assert json.loads(body) == {"error": "The upload is too large: voice recordings can be at most 2 MB."}
