"""Text the database cannot store (a NUL, a lone surrogate) is refused where it comes in, never a 500.

JSON's ``\\u0000`` and ``\\ud800`` escapes put them in any string of a frame;
PostgreSQL refuses both (psycopg raised on each such frame, with a
traceback). Every frame on every route of the socket now gets ``error`` /
``bad_frame``, and the socket stays usable; the no-JavaScript forms show an
error.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat import events
from chat.models import Conversation, Message, PipelineRun
from tests.chat.factories import add_exchange, chat_of, make_group

UNSTORABLE = ["\x00", "\ud800", "\udfff", "\ud83d"]  # NUL, lone surrogates (high, low, half an emoji)


def frames_with(bad: str) -> list[dict]:
    """One frame per way text comes in over a socket, each carrying ``bad``."""
    return [
        {"type": "message.send", "content": f"Hi{bad}there"},
        {"type": "message.send", "content": "Hi", "client_id": f"c{bad}"},
        {"type": "message.edit", "content": f"Changed{bad}"},
        {"type": "message.edit", "content": f"Fixed{bad}", "message_id": 1, "resend": False},
        {"type": "conversation.branch", "message_id": 1, "client_id": f"b{bad}"},
        {"type": "picture.delete", "message_id": 1, "why": bad},
        {"type": "message.regenerate", "client_id": bad},
        {"type": "message.continue", "client_id": bad},
        {"type": "run.retry", "run_id": f"{bad}0000000-0000-0000-0000-000000000000"},
        {"type": "run.cancel", "run_id": bad},
        {"type": "message.delete", "message_id": 1, "note": [{"deep": bad}]},
        {"type": "ping", f"key{bad}": 1},
    ]


@sync_to_async
def stored_rows():
    """Every message as it is, how many runs, how many conversations: nothing may change."""
    messages = list(Message.objects.order_by("pk").values_list("pk", "content", "edited_at"))
    return messages, PipelineRun.objects.count(), Conversation.objects.count()


async def assert_bad_frame(client, text_data: str) -> None:
    await client.send(text_data)
    answer = await client.receive()
    assert (answer["type"], answer["code"]) == ("error", "bad_frame"), answer
    assert "NUL" in answer["message"] and "Traceback" not in answer["message"]
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bad", UNSTORABLE, ids=["nul", "high", "low", "half_emoji"])
@pytest.mark.parametrize("escaped", [True, False], ids=["escaped", "raw"])
async def test_every_one_to_one_frame_with_unstorable_text_is_a_bad_frame(
    bad, escaped, connect, companion, user
):
    client = await connect(companion.pk, user=user)
    before = await stored_rows()
    for frame in frames_with(bad):
        # Escaped is what arrives over the wire; raw is a str the server could be handed directly.
        await assert_bad_frame(client, json.dumps(frame, ensure_ascii=escaped))
    assert await stored_rows() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bad", UNSTORABLE, ids=["nul", "high", "low", "half_emoji"])
@pytest.mark.parametrize("route", ["group", "conversation"])
async def test_every_group_frame_with_unstorable_text_is_a_bad_frame(bad, route, connect, user):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    client = await connect(None, user=user, path=f"/ws/{route}/{group.pk}/")
    before = await stored_rows()
    for frame in frames_with(bad):  # a group takes every frame a one-to-one chat does
        await assert_bad_frame(client, json.dumps(frame))
    assert await stored_rows() == before


# Any frame type, any fields, any nesting, with unstorable text somewhere in it.
_text = st.text(max_size=8)
_bad_text = st.builds(
    lambda before, bad, after: before + bad + after, _text, st.sampled_from(UNSTORABLE), _text
)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), _text)
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3)
)


@st.composite
def frames_with_unstorable_text(draw) -> dict:
    frame = draw(st.dictionaries(_text.filter(lambda k: k != "type"), _values, max_size=4))
    frame["type"] = draw(st.sampled_from(sorted(events.CLIENT_FRAMES)))
    where = draw(st.sampled_from(["value", "key", "nested"]))
    bad = draw(_bad_text)
    if where == "value":
        frame[draw(st.sampled_from(["content", "client_id", "run_id", "extra"]))] = bad
    elif where == "key":
        frame[bad] = draw(_values)
    else:
        frame["extra"] = [draw(_values), {draw(_text): bad}]
    return frame


@pytest.mark.django_db(transaction=True)
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frame=frames_with_unstorable_text(), group_socket=st.booleans())
async def test_any_frame_with_unstorable_text_is_refused_and_the_socket_survives(
    frame, group_socket, connect, companion, user
):
    if group_socket:
        group = await sync_to_async(make_group)(user, "Mika", "Rin")
        client = await connect(None, user=user, path=f"/ws/group/{group.pk}/")
    else:
        client = await connect(companion.pk, user=user)
    try:
        before = await stored_rows()
        await assert_bad_frame(client, json.dumps(frame))
        assert await client.nothing_more()
    finally:
        await client.close()
    assert await stored_rows() == before


# --- the forms ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["\x00"], ids=["nul"])  # a form body cannot carry a surrogate
@pytest.mark.parametrize("form", ["chat", "group"])
def test_the_send_forms_refuse_unstorable_text_with_a_message(form, bad, client, companion, user):
    conversation = chat_of(companion) if form == "chat" else make_group(user, "Mika", "Rin")
    client.force_login(user)
    response = client.post(
        reverse("chat:send", args=[conversation.pk]), {"content": f"Hi{bad}there"}, follow=True
    )
    assert response.status_code == 200
    assert "NUL characters" in response.content.decode()
    assert (Message.objects.count(), PipelineRun.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_the_edit_form_refuses_unstorable_text_with_a_message(client, companion, user):
    conversation = chat_of(companion)
    _, reply = add_exchange(conversation, companion, "Hi", "Hello")
    client.force_login(user)
    url = reverse("chat:edit", args=[conversation.pk, reply.pk])
    response = client.post(url, {"content": "Hel\x00lo"}, follow=True)
    assert response.status_code == 200
    assert "NUL characters" in response.content.decode()
    reply.refresh_from_db()
    assert (reply.content, reply.edited_at) == ("Hello", None)


@pytest.mark.django_db
def test_the_rename_form_refuses_unstorable_text(client, companion, user):
    conversation = chat_of(companion)
    client.force_login(user)
    response = client.post(reverse("chat:rename", args=[conversation.pk]), {"title": "A\x00B"}, follow=True)
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.title == ""
