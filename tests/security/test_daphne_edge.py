"""The real Daphne, started as the Procfile starts it, against hostile requests.

* A huge body is answered before it is read, and Daphne's memory stays flat
  (Twisted used to buffer it and parse a multipart body in memory first).
* A forged ``X-Forwarded-For`` changes neither a rate-limit key nor the
  address in the request log.

Daphne listens on a loopback port; the bodies are streamed from generators.
"""

from __future__ import annotations

import json
import re
import select
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from companionhub.body_limits import UPLOAD_VIEWS
from tests.fakes.site import ROOT, Site, free_port, site_env, stop_process

MB = 1024 * 1024
HUGE = 100 * MB
# Daphne may grow this much while refusing a 100 MB body; it grew by 1.2 GB before.
MAX_GROWTH_KB = 20 * 1024
BOUNDARY = "edge-test-boundary"
IMPORT_URL = "/companions/import/"


def procfile_web_command(port: int) -> list[str]:
    """The Procfile's ``web`` command, on a loopback port."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    args = shlex.split(line.removeprefix("web:").replace("${PORT:-8000}", str(port)))
    assert args[0] == "daphne"
    args[args.index("--bind") + 1] = "127.0.0.1"
    return [sys.executable, "-m", "daphne", *args[1:]]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    var_dir = tmp_path_factory.mktemp("daphne-edge")
    overrides = {
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "EMBEDDED_WORKER": "False",  # nothing else in the process to move its memory
        "RATELIMIT_ENABLE": "True",
    }
    port = free_port()
    site = Site(
        base_url=f"http://127.0.0.1:{port}", env=site_env(overrides, var_dir=var_dir), log_dir=var_dir
    )
    site.port = port
    site.manage("migrate", "--noinput", "-v0")
    with (var_dir / "server.log").open("a") as log:
        site.server = subprocess.Popen(
            procfile_web_command(port), cwd=ROOT, env=site.env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_up(site)
        yield site
    finally:
        stop_process(site.server)


def _wait_until_up(site: Site) -> None:
    for _ in range(150):
        try:
            requests.get(f"{site.base_url}/healthz", timeout=1)
            return
        except requests.ConnectionError:
            assert site.server.poll() is None, (site.log_dir / "server.log").read_text()[-3000:]
            time.sleep(0.2)
    pytest.fail("Daphne did not start:\n" + (site.log_dir / "server.log").read_text()[-3000:])


# --- a client that streams a body and stops once it is answered -------------------------


@dataclass
class Exchange:
    status: int
    body: bytes
    body_bytes_sent: int


def multipart_body(size: int) -> Iterator[bytes]:
    """A multipart/form-data body of ``size`` bytes with one file field, 64 KB at a time."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="card"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    yield head
    remaining, block = size - len(head) - len(tail), b"\0" * (64 * 1024)
    while remaining > 0:
        yield block[: min(len(block), remaining)]
        remaining -= len(block)
    yield tail


def post_streaming(
    port: int,
    path: str,
    parts: Iterator[bytes],
    *,
    length: int | None,
    content_type: str = f"multipart/form-data; boundary={BOUNDARY}",
    headers: dict[str, str] | None = None,
) -> Exchange:
    """POST ``parts`` (with ``length`` as Content-Length, or chunked when None) until answered."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Type: {content_type}"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            for part in parts:
                if select.select([sock], [], [], 0)[0]:  # answered: stop sending
                    break
                sock.sendall(part if length is not None else b"%x\r\n%s\r\n" % (len(part), part))
                sent += len(part)
            else:
                if length is None:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us; the answer, if any, is read below
        status, body = _read_response(sock)
    return Exchange(status, body, sent)


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while match and len(body) < int(match.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ", 2)[1]), body


# --- memory ----------------------------------------------------------------------------


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def peak_growth_kb(pid: int, action: Callable[[], Exchange]) -> tuple[Exchange, int]:
    """Run ``action``; return its result and how far the process's peak RSS rose above its RSS before."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _status_kb(pid, "VmRSS")
    except OSError:
        before = _status_kb(pid, "VmHWM")
    result = action()
    return result, _status_kb(pid, "VmHWM") - before


@pytest.fixture(scope="module")
def warmed_up(site: Site) -> Site:
    """Each refusal path run once, so its first-time allocations are not counted."""
    post_streaming(site.port, "/", iter([b"x" * 100]), length=100)
    post_streaming(site.port, "/", multipart_body(3 * MB), length=3 * MB)
    post_streaming(site.port, IMPORT_URL, multipart_body(11 * MB), length=None)
    return site


# --- bodies ----------------------------------------------------------------------------


def test_a_100_mb_multipart_body_is_refused_before_it_is_read(warmed_up):
    site = warmed_up
    exchange, growth = peak_growth_kb(
        site.server.pid, lambda: post_streaming(site.port, "/", multipart_body(HUGE), length=HUGE)
    )
    assert exchange.status == 413, exchange
    assert exchange.body_bytes_sent < HUGE, "the answer came only after the whole body"
    assert growth < MAX_GROWTH_KB, f"Daphne grew by {growth / 1024:.0f} MB"
    assert site.server.poll() is None


def test_a_100_mb_body_without_content_length_is_cut_at_the_limit(warmed_up):
    site = warmed_up
    exchange, growth = peak_growth_kb(
        site.server.pid, lambda: post_streaming(site.port, IMPORT_URL, multipart_body(HUGE), length=None)
    )
    assert exchange.status == 413, exchange
    assert b"too large" in exchange.body
    assert exchange.body_bytes_sent < HUGE, "the answer came only after the whole body"
    assert growth < MAX_GROWTH_KB, f"Daphne grew by {growth / 1024:.0f} MB"


def test_a_multipart_body_where_nothing_is_uploaded_is_refused(site):
    response = requests.post(f"{site.base_url}/", files={"f": ("a.txt", b"hello")}, timeout=10)
    assert response.status_code == 415


def test_a_refused_connection_is_closed_even_when_its_body_was_complete(site):
    """Twisted switches its idle timeout off once a body is complete (here: an empty one), so
    the linger after a refusal must end by a clock of its own, or a client that never hangs
    up keeps the half-closed connection, and a file descriptor, for as long as it likes."""
    from companionhub.daphne_guard import LINGER_SECONDS

    request = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 0\r\n\r\n"
    )
    host, port = site.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request.encode())
        received = b""
        while chunk := conn.recv(65536):  # the answer, then the server's end of writing
            received += chunk
        assert received.startswith(b"HTTP/1.1 415")
        # Our side stays open and keeps writing: once the server has ended the connection
        # a write fails. Bounded: well past the linger, the connection is taken as left open.
        deadline = time.monotonic() + LINGER_SECONDS * 3
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                conn.sendall(b"x")
            except OSError:
                closed = True
            else:
                time.sleep(0.5)
    assert closed, "the refused connection was still open long after its linger"


def csrf_session(site: Site, path: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    page = session.get(f"{site.base_url}{path}", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    return session, token.group(1)


def test_bodies_within_the_limits_still_reach_django(site):
    # An upload page takes a multipart body (and then asks an anonymous caller to sign in).
    session, token = csrf_session(site, "/accounts/login/")
    response = session.post(
        f"{site.base_url}{IMPORT_URL}",
        data={"csrfmiddlewaretoken": token},
        files={"card": ("card.json", b"{}", "application/json")},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    assert "/accounts/login/" in response.headers["Location"]
    # A chunked form post is read whole and answered by the view.
    body = f"csrfmiddlewaretoken={token}&username=x&password=y".encode()
    exchange = post_streaming(
        site.port,
        "/accounts/login/",
        iter([body[:10], body[10:]]),
        length=None,
        content_type="application/x-www-form-urlencoded",
        headers={"Cookie": f"csrftoken={session.cookies['csrftoken']}"},
    )
    assert exchange.status == 200  # not 403: the token in the body was read
    assert b'value="x"' in exchange.body  # the form came back with what was posted


def test_every_form_with_a_file_input_posts_to_an_upload_url():
    """A new upload form needs its URL name in body_limits.UPLOAD_VIEWS, or its bodies are refused."""
    multipart = {
        str(path.relative_to(ROOT / "templates"))
        for path in (ROOT / "templates").rglob("*.html")
        if 'enctype="multipart/form-data"' in path.read_text()
    }
    pages = {
        "companions/wizard.html": "companions:wizard",
        "companions/settings.html": "companions:settings",
        "companions/card_import.html": "companions:card_import",
        "chat/model.html": "chat:model",
        "chat/import.html": "chat:import",
        "lorebooks/import.html": "lorebooks:import",
        "admin/chat/samplerpreset/import.html": "admin:chat_samplerpreset_import",
    }
    assert multipart == set(pages)
    assert set(pages.values()) == UPLOAD_VIEWS


# --- client addresses ------------------------------------------------------------------


def test_a_forged_x_forwarded_for_neither_resets_a_limit_nor_reaches_the_log(site):
    """Registration allows 3 attempts a day per address, whatever the client says it is."""
    session, token = csrf_session(site, "/accounts/register/")
    statuses = [
        session.post(
            f"{site.base_url}/accounts/register/",
            data={"csrfmiddlewaretoken": token, "username": f"edge{n}"},
            headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
            timeout=10,
        ).status_code
        for n in range(4)
    ]
    assert statuses == [200, 200, 200, 429]

    log = (site.log_dir / "server.log").read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    posts = [
        line
        for line in lines
        if line.get("event") == "request_started" and line.get("request") == "POST /accounts/register/"
    ]
    assert len(posts) == 4
    assert {line.get("ip") for line in posts} == {"127.0.0.1"}
    assert "203.0.113." not in log
