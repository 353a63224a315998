"""Every way to start a run passes the same quota and rate limits (``chat.services.run_admit``).

The start paths are the frames that start a run on the one-to-one and the
group socket, and the no-JavaScript forms. Each is driven through its real
interface with a limit used up, and must be refused with nothing stored.
A new frame type fails ``test_every_client_frame_is_sorted`` until it is
listed here as a start or not; a new place that makes run rows fails
``test_run_rows_are_made_in_one_place``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from chat import events, services
from chat.models import Message, PipelineRun
from companionhub import ratelimits
from groups.models import GroupMessage
from media.services import store_image
from tests.chat.test_usage import use_up_quota
from tests.companions.factories import png_bytes
from tests.groups.factories import make_group
from tests.groups.test_regenerate import finished_turn

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = "<the failed run>"
PICTURE_REPLY = "<the reply with a picture>"

CHAT_STARTS = {
    "message.send": {"type": "message.send", "content": "One more?"},
    "message.edit": {"type": "message.edit", "content": "Changed my mind"},
    "message.regenerate": {"type": "message.regenerate"},
    "message.continue": {"type": "message.continue"},
    "run.retry": {"type": "run.retry", "run_id": RUN_ID},
    "picture.repaint": {"type": "picture.repaint", "message_id": PICTURE_REPLY},
}
GROUP_STARTS = {
    "message.send": {"type": "message.send", "content": "Anyone there?"},
    "message.regenerate": {"type": "message.regenerate"},
    "message.continue": {"type": "message.continue"},
}
NOT_STARTS = {"ping", "run.cancel", "message.delete", "message.alternative"}
CHAT_ONLY_NOT_STARTS = {"picture.use_as_header", "picture.delete"}  # the group socket has no picture frames
REFUSAL = {"chat_message": "rate_limited", "quota": "quota_exceeded"}


def test_every_client_frame_is_sorted():
    """A new frame type must be listed as a start (and so tested below) or not."""
    assert set(CHAT_STARTS) | NOT_STARTS | CHAT_ONLY_NOT_STARTS == set(events.CLIENT_FRAMES)
    assert set(GROUP_STARTS) | NOT_STARTS == set(events.GROUP_CLIENT_FRAMES)
    assert NOT_STARTS.isdisjoint(CHAT_STARTS)


# --- the rows each start path needs ------------------------------------------------------


def one_to_one_history(companion, *, want_image: bool = False) -> str:
    """A message, a reply cut at the length limit, and the latest run failed: every start is possible."""
    said = Message.objects.create(companion=companion, role="user", content="Hi")
    reply = Message.objects.create(
        companion=companion,
        role="assistant",
        content="Hello there",
        finish_reason="length",
        image=store_image(png_bytes(), companion, "generated", prompt="Mika, at the beach"),
    )
    run = PipelineRun.objects.create(
        companion=companion,
        user_message=said,
        assistant_message=reply,
        status="failed",
        want_image=want_image,
    )
    return str(run.pk)


def picture_reply_id(companion) -> int:
    return Message.objects.filter(companion=companion, image__isnull=False).values_list("pk", flat=True).get()


def group_history(user):
    group = make_group(user, "Mika", "Rin")
    *_, last = finished_turn(group)
    GroupMessage.objects.filter(pk=last.pk).update(finish_reason="length")
    return group


def chat_rows(companion_id: int):
    messages = Message.objects.filter(companion_id=companion_id).order_by("pk")
    runs = PipelineRun.objects.filter(companion_id=companion_id)
    return list(messages.values_list("content", "alternatives")), runs.count()


def group_rows(group_id: int):
    messages = GroupMessage.objects.filter(group_id=group_id).order_by("pk")
    return list(messages.values_list("content", "alternatives")), PipelineRun.objects.filter(
        group_id=group_id
    ).count()


def use_up(limit: str, user, settings) -> None:
    """Spend ``user``'s allowance of ``limit`` ("chat_message", "image" or "quota")."""
    if limit == "quota":
        settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
        use_up_quota.func(user)
        return
    allowed = int(settings.RATE_LIMITS[limit].split("/")[0])
    for _ in range(allowed):
        ratelimits.hit(limit, f"user:{user.pk}")


async def assert_refused(client, frame: dict, code: str) -> dict:
    """The frame's answer is an ``error`` with ``code`` (not an acceptance), and the socket stays usable."""
    await client.send(frame)
    answer = await client.receive()
    assert (answer["type"], answer.get("code")) == ("error", code), answer
    assert "run_id" not in answer
    if code == "rate_limited":
        assert answer["retry_after"] > 0
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"
    return answer


# --- over the sockets ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("limit", sorted(REFUSAL))
@pytest.mark.parametrize("kind", sorted(CHAT_STARTS))
async def test_each_one_to_one_start_is_refused_over_the_limit(
    kind, limit, rate_limits, settings, connect, companion, user
):
    run_id = await sync_to_async(one_to_one_history)(companion)
    frame = {**CHAT_STARTS[kind], **({"run_id": run_id} if "run_id" in CHAT_STARTS[kind] else {})}
    if "message_id" in frame:
        frame["message_id"] = await sync_to_async(picture_reply_id)(companion)
    await sync_to_async(use_up)(limit, user, settings)
    before = await sync_to_async(chat_rows)(companion.pk)
    client = await connect(companion.pk, user=user)
    await assert_refused(client, frame, REFUSAL[limit])
    assert await sync_to_async(chat_rows)(companion.pk) == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("limit", sorted(REFUSAL))
@pytest.mark.parametrize("kind", sorted(GROUP_STARTS))
async def test_each_group_start_is_refused_over_the_limit(kind, limit, rate_limits, settings, connect, user):
    group = await sync_to_async(group_history)(user)
    await sync_to_async(use_up)(limit, user, settings)
    before = await sync_to_async(group_rows)(group.pk)
    client = await connect(None, user=user, path=f"/ws/group/{group.pk}/")
    await assert_refused(client, GROUP_STARTS[kind], REFUSAL[limit])
    assert await sync_to_async(group_rows)(group.pk) == before


@pytest.mark.django_db(transaction=True)
async def test_retrying_a_picture_reply_counts_against_the_picture_limit(
    rate_limits, settings, connect, companion, user
):
    """The pen test's case: cancel and retry restarted picture runs while sending was refused."""
    run_id = await sync_to_async(one_to_one_history)(companion, want_image=True)
    await sync_to_async(use_up)("image", user, settings)
    client = await connect(companion.pk, user=user)
    refused = await assert_refused(client, {"type": "run.retry", "run_id": run_id}, "rate_limited")
    assert "picture" in refused["message"]
    assert await sync_to_async(PipelineRun.objects.filter(companion=companion).count)() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("socket", ["one_to_one", "group"])
async def test_a_picture_over_the_picture_limit_is_refused_on_both_sockets(
    socket, rate_limits, settings, connect, companion, user
):
    await sync_to_async(use_up)("image", user, settings)
    if socket == "group":
        group = await sync_to_async(make_group)(user, "Mika", "Rin")
        client = await connect(None, user=user, path=f"/ws/group/{group.pk}/")
    else:
        client = await connect(companion.pk, user=user)
    frame = {"type": "message.send", "content": "A selfie, please", "image": True}
    assert "picture" in (await assert_refused(client, frame, "rate_limited"))["message"]


@pytest.mark.django_db(transaction=True)
async def test_a_picture_asked_for_in_words_over_the_limit_is_not_painted(
    worker, use_fake_llm, use_fake_sd, rate_limits, settings, connect, companion, user
):
    use_fake_llm.completion_text = (
        '{"outfit": "swimsuit", "location": "beach", "action": "posing", "wants_image": true}'
    )
    await sync_to_async(use_up)("image", user, settings)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Send me a selfie from the beach!"})
    await client.receive_until("done")
    [refused] = [e for e in client.of_type("error") if e["code"] == "image_failed"]
    assert "picture" in refused["message"]
    assert client.of_type("image") == [] and use_fake_sd.requests == []


# --- the forms ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("limit", sorted(REFUSAL))
@pytest.mark.parametrize("form", ["chat", "group"])
def test_each_form_start_is_refused_over_the_limit(
    form, limit, client, rate_limits, settings, companion, user
):
    if form == "chat":
        url, rows = reverse("chat:send", args=[companion.pk]), lambda: chat_rows(companion.pk)
    else:
        group = make_group(user, "Mika", "Rin")
        url, rows = reverse("groups:send", args=[group.pk]), lambda: group_rows(group.pk)
    use_up(limit, user, settings)
    before = rows()
    client.force_login(user)
    response = client.post(url, {"content": "One more?"}, follow=limit == "quota")
    if limit == "chat_message":
        assert response.status_code == 429 and int(response["Retry-After"]) > 0
    else:
        assert "You have used your 100 tokens for this month" in response.content.decode()
    assert rows() == before


# --- no other way to make a run -----------------------------------------------------------

ROW_MAKERS = frozenset({"create", "bulk_create", "get_or_create", "update_or_create"})
APP_PACKAGES = ("accounts", "chat", "companionhub", "companions", "groups", "media")


class _Calls(ast.NodeVisitor):
    """(file, innermost enclosing function) of every call that ``matches``."""

    def __init__(self, path: str, matches) -> None:
        self.path, self.matches, self.functions, self.found = path, matches, ["<module>"], set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        if self.matches(node.func):
            self.found.add((self.path, self.functions[-1]))
        self.generic_visit(node)


def calls_in_app_code(matches) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            visitor = _Calls(path.relative_to(ROOT).as_posix(), matches)
            visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
            found |= visitor.found
    return found


def _makes_runs(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id == "PipelineRun"
    if isinstance(func, ast.Attribute) and func.attr in ROW_MAKERS:
        receiver = ast.unparse(func.value)
        return "PipelineRun" in receiver or receiver.endswith(".runs")  # a related manager
    return False


def _makes_admissions(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "RunAdmission") or (
        isinstance(func, ast.Attribute) and func.attr == "RunAdmission"
    )


def test_run_rows_are_made_in_one_place():
    """Only ``run_create`` makes runs, and it needs an admission only ``run_admit`` gives."""
    assert calls_in_app_code(_makes_runs) == {("chat/services.py", "run_create")}
    assert calls_in_app_code(_makes_admissions) == {("chat/services.py", "run_admit")}


@pytest.mark.django_db
def test_run_create_refuses_a_run_without_a_fitting_admission(companion, user, other_user):
    said = Message.objects.create(companion=companion, role="user", content="Hi")
    with pytest.raises(ValueError):
        services.run_create(companion=companion, user_message=said, want_image=False)
    with pytest.raises(ValueError):  # another user's admission
        services.run_create(
            companion=companion,
            user_message=said,
            want_image=False,
            admission=services.run_admit(other_user, want_image=False),
        )
    with pytest.raises(ValueError):  # a picture that was not counted
        services.run_create(
            companion=companion,
            user_message=said,
            want_image=True,
            admission=services.run_admit(user, want_image=False),
        )
    admission = services.run_admit(user, want_image=False)
    services.run_create(companion=companion, user_message=said, want_image=False, admission=admission)
    with pytest.raises(ValueError):  # spent
        services.run_create(companion=companion, user_message=said, want_image=False, admission=admission)
    assert PipelineRun.objects.filter(companion=companion).count() == 1


@pytest.mark.django_db
def test_only_the_next_companion_of_the_same_turn_follows_without_an_admission(user):
    group = make_group(user, "Mika", "Rin")
    said, first_reply, _ = finished_turn(group)
    earlier = PipelineRun.objects.get(group_reply=first_reply)
    rin = group.companions.get(name="Rin")
    other_turn = GroupMessage.objects.create(group=group, content="Later", reply_order=[rin.pk])
    for message, want_image in ((other_turn, False), (said, True)):
        with pytest.raises(ValueError):
            services.run_create(
                companion=rin, group=group, group_user_message=message, want_image=want_image, follows=earlier
            )
    run = services.run_create(
        companion=rin, group=group, group_user_message=said, want_image=False, follows=earlier
    )
    assert run.group_user_message_id == said.pk
