"""Every way to start a run passes the same quota and rate limits (``chat.admission.run_admit``).

The start paths are the frames that start a run, in a one-to-one chat and
in a group (one consumer serves both, so every frame works in each), and
the no-JavaScript forms. Each is driven through its real interface with a
limit used up, and must be refused with nothing stored. A new frame type
fails ``test_every_client_frame_is_sorted`` until it is listed here as a
start or not; a new place that makes run rows fails
``test_run_rows_are_made_in_one_place``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from accounts import usage
from accounts.models import UserUsage
from chat import events, runs
from chat.admission import run_admit
from chat.models import Conversation, Message, PipelineRun
from companionhub import ratelimits
from media.services import store_image
from tests.chat.factories import add_reply, add_user_message, chat_of, make_group
from tests.companions.factories import png_bytes

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = "<the failed run>"
PICTURE_REPLY = "<the reply with a picture>"

STARTS = {
    "message.send": {"type": "message.send", "content": "One more?"},
    "message.edit": {"type": "message.edit", "content": "Changed my mind"},  # resends the last message
    "message.regenerate": {"type": "message.regenerate"},
    "message.continue": {"type": "message.continue"},
    "run.retry": {"type": "run.retry", "run_id": RUN_ID},
    "picture.repaint": {"type": "picture.repaint", "message_id": PICTURE_REPLY},
}
NOT_STARTS = {
    "ping",
    "run.cancel",
    "message.delete",
    "message.alternative",
    "picture.use_as_header",
    "picture.delete",
    "conversation.branch",
}
REFUSAL = {"chat_message": "rate_limited", "quota": "quota_exceeded"}


def test_every_client_frame_is_sorted():
    """A new frame type must be listed as a start (and so tested below) or not."""
    assert set(STARTS) | NOT_STARTS == set(events.CLIENT_FRAMES)
    assert NOT_STARTS.isdisjoint(STARTS)


# --- the rows each start path needs ------------------------------------------------------


def make_conversation(kind: str, companion, user) -> Conversation:
    if kind == "group":
        return make_group(user, "Rin", "Aya")
    return chat_of(companion)


def history(conversation: Conversation, *, want_image: bool = False) -> str:
    """A message, a reply (with a picture) cut at the length limit, and its run failed: every
    start is possible. Returns the failed run's id."""
    speaker = conversation.companions.order_by("participations__position").first()
    said = add_user_message(conversation, "Hi", order=[speaker.pk])
    reply = add_reply(
        conversation,
        speaker,
        "Hello there",
        finish_reason="length",
        image=store_image(png_bytes(), speaker, "generated", prompt=f"{speaker.name}, at the beach"),
    )
    run = PipelineRun.objects.create(
        conversation=conversation,
        turn=said.turn,
        companion=speaker,
        reply=reply,
        status="failed",
        want_image=want_image,
    )
    return str(run.pk)


def picture_reply_id(conversation: Conversation) -> int:
    return (
        Message.objects.filter(conversation=conversation, image__isnull=False)
        .values_list("pk", flat=True)
        .get()
    )


def rows(conversation_id: int):
    messages = Message.objects.filter(conversation_id=conversation_id).order_by("pk")
    made = PipelineRun.objects.filter(conversation_id=conversation_id).count()
    return list(messages.values_list("content", "alternatives", "image", "edited_at")), made


def use_up(limit: str, user, settings) -> None:
    """Spend ``user``'s allowance of ``limit`` ("chat_message", "image" or "quota")."""
    if limit == "quota":
        settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
        UserUsage.objects.update_or_create(
            user=user,
            defaults={"period_start": usage.month_start(), "tokens_this_period": 100, "lifetime_tokens": 100},
        )
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
@pytest.mark.parametrize("kind", ["direct", "group"])
@pytest.mark.parametrize("limit", sorted(REFUSAL))
@pytest.mark.parametrize("start", sorted(STARTS))
async def test_each_start_is_refused_over_the_limit(
    start, limit, kind, rate_limits, settings, connect, companion, user
):
    conversation = await sync_to_async(make_conversation)(kind, companion, user)
    run_id = await sync_to_async(history)(conversation)
    frame = {**STARTS[start], **({"run_id": run_id} if "run_id" in STARTS[start] else {})}
    if "message_id" in frame:
        frame["message_id"] = await sync_to_async(picture_reply_id)(conversation)
    await sync_to_async(use_up)(limit, user, settings)
    before = await sync_to_async(rows)(conversation.pk)
    client = await connect(None, user=user, path=f"/ws/conversation/{conversation.pk}/")
    await assert_refused(client, frame, REFUSAL[limit])
    assert await sync_to_async(rows)(conversation.pk) == before


@pytest.mark.django_db(transaction=True)
async def test_a_correction_in_place_is_no_start_and_passes_over_the_limit(
    rate_limits, settings, connect, companion, user
):
    """Correcting a reply starts no run: it is not counted, and not refused, by the message limits."""
    conversation = await sync_to_async(chat_of)(companion)
    await sync_to_async(history)(conversation)
    reply = await sync_to_async(Message.objects.get)(conversation=conversation, role="assistant")
    await sync_to_async(use_up)("chat_message", user, settings)
    client = await connect(None, user=user, path=f"/ws/conversation/{conversation.pk}/")
    await client.send({"type": "message.edit", "message_id": reply.pk, "content": "Hello, there."})
    assert (await client.receive())["type"] == "message.updated"
    assert (await sync_to_async(rows)(conversation.pk))[1] == 1  # only the failed run of the history


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["direct", "group"])
async def test_retrying_a_picture_reply_counts_against_the_picture_limit(
    kind, rate_limits, settings, connect, companion, user
):
    """The pen test's case: cancel and retry restarted picture runs while sending was refused."""
    conversation = await sync_to_async(make_conversation)(kind, companion, user)
    run_id = await sync_to_async(history)(conversation, want_image=True)
    await sync_to_async(use_up)("image", user, settings)
    client = await connect(None, user=user, path=f"/ws/conversation/{conversation.pk}/")
    refused = await assert_refused(client, {"type": "run.retry", "run_id": run_id}, "rate_limited")
    assert "picture" in refused["message"]
    assert (await sync_to_async(rows)(conversation.pk))[1] == 1


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
@pytest.mark.parametrize("kind", ["direct", "group"])
@pytest.mark.parametrize("form", ["send", "picture_paint_again"])
def test_each_form_start_is_refused_over_the_limit(
    form, kind, limit, client, rate_limits, settings, companion, user
):
    conversation = make_conversation(kind, companion, user)
    history(conversation)
    if form == "send":
        url, data = reverse("chat:send", args=[conversation.pk]), {"content": "One more?"}
    else:
        url, data = (
            reverse("chat:picture_paint_again", args=[conversation.pk, picture_reply_id(conversation)]),
            {},
        )
    use_up(limit, user, settings)
    before = rows(conversation.pk)
    client.force_login(user)
    response = client.post(url, data, follow=limit == "quota")
    if limit == "chat_message":
        assert response.status_code == 429 and int(response["Retry-After"]) > 0
    else:
        assert "You have used your 100 tokens for this month" in response.content.decode()
    assert rows(conversation.pk) == before


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
    assert calls_in_app_code(_makes_runs) == {("chat/runs.py", "run_create")}
    assert calls_in_app_code(_makes_admissions) == {("chat/admission.py", "run_admit")}


@pytest.mark.django_db
def test_run_create_refuses_a_run_without_a_fitting_admission(companion, user, other_user):
    conversation = chat_of(companion)
    said = add_user_message(conversation, "Hi")
    where = {"conversation": conversation, "turn": said.turn}
    with pytest.raises(ValueError):
        runs.run_create(companion=companion, want_image=False, **where)
    with pytest.raises(ValueError):  # another user's admission
        runs.run_create(
            companion=companion, want_image=False, admission=run_admit(other_user, want_image=False), **where
        )
    with pytest.raises(ValueError):  # a picture that was not counted
        runs.run_create(
            companion=companion, want_image=True, admission=run_admit(user, want_image=False), **where
        )
    admission = run_admit(user, want_image=False)
    runs.run_create(companion=companion, want_image=False, admission=admission, **where)
    with pytest.raises(ValueError):  # spent
        runs.run_create(companion=companion, want_image=False, admission=admission, **where)
    assert PipelineRun.objects.filter(companion=companion).count() == 1


@pytest.mark.django_db
def test_only_the_next_companion_of_the_same_turn_follows_without_an_admission(user):
    group = make_group(user, "Mika", "Rin")
    mika, rin = group.companions.order_by("name")
    said = add_user_message(group, "Hello", order=[mika.pk, rin.pk])
    reply = add_reply(group, mika, "Hi!")
    earlier = PipelineRun.objects.create(
        conversation=group, turn=said.turn, companion=mika, reply=reply, status="completed"
    )
    later = add_user_message(group, "Later", order=[rin.pk])
    for turn, want_image in ((later.turn, False), (said.turn, True)):
        with pytest.raises(ValueError):
            runs.run_create(
                companion=rin, conversation=group, turn=turn, want_image=want_image, follows=earlier
            )
    run = runs.run_create(
        companion=rin, conversation=group, turn=said.turn, want_image=False, follows=earlier
    )
    assert run.turn_id == said.turn.pk
