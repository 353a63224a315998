"""Writing a group's latest reply again, and flipping back to the old text.

The service refusals are checked on rows made by hand; the accepted case runs
end to end: the group socket -> ``chat.editing`` -> the chat's Celery chain.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat import editing
from chat.models import Conversation, Message, Participant, PipelineRun
from chat.paging import MAX_ID
from chat.selectors import conversation_members
from companionhub.errors import AppError
from tests.chat.factories import add_reply, add_user_message, make_group
from tests.chat.test_usage import use_up_quota

OLD = "The old reply. *waves*"
NEW = "A brand new reply, written again."


def finished_turn(group: Conversation, *, replies=("Mika", "Rin"), status="completed") -> list[Message]:
    """The user's message and the named companions' replies, with their runs.

    The last run has ``status``; the ones before it completed (a conversation
    has one live run at a time).
    """
    members = {c.name: c for c in conversation_members(group)}
    said = add_user_message(group, "Hello", order=[members[name].pk for name in replies])
    rows = [said]
    for index, name in enumerate(replies):
        reply = add_reply(group, members[name], f"{OLD} ({name})")
        PipelineRun.objects.create(
            conversation=group,
            turn=said.turn,
            companion=members[name],
            reply=reply,
            status=status if index == len(replies) - 1 else "completed",
        )
        rows.append(reply)
    return rows


def nothing_changed(group: Conversation, rows: list[Message]) -> bool:
    """The group still has exactly ``rows``, unchanged, and one run per reply (no new run)."""
    now = list(
        Message.objects.filter(conversation=group).order_by("pk").values_list("content", "alternatives")
    )
    runs = PipelineRun.objects.filter(conversation=group).count()
    return now == [(r.content, r.alternatives) for r in rows] and runs == sum(bool(r.sender_id) for r in rows)


# --- the service, on rows made by hand -------------------------------------------------


@pytest.mark.django_db
def test_regenerate_keeps_the_old_text_and_starts_the_same_companion(
    user, django_capture_on_commit_callbacks
):
    group = make_group(user, "Mika", "Rin")
    said, _, last = finished_turn(group)
    with django_capture_on_commit_callbacks() as callbacks:
        started = editing.message_regenerate(user=user, conversation=group, message_id=last.pk)
    last.refresh_from_db()
    assert last.alternatives == [f"{OLD} (Rin)"]
    run = started.run
    assert (run.companion.name, run.conversation_id, run.turn.message_id, run.reply_id, run.status) == (
        "Rin",
        group.pk,
        said.pk,
        last.pk,
        "queued",
    )
    assert started.message == said
    # Names the speaker and starts the chain after commit (and the pages' cache is told).
    assert len(callbacks) == 2


@pytest.mark.django_db
def test_without_an_id_the_latest_reply_is_meant(user):
    group = make_group(user, "Mika", "Rin")
    *_, last = finished_turn(group)
    assert editing.message_regenerate(user=user, conversation=group).run.reply_id == last.pk


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["queued", "waiting", "running"])
def test_refused_while_a_reply_is_being_written(user, status):
    group = make_group(user, "Mika", "Rin")
    rows = finished_turn(group, status=status)
    for action in (editing.message_regenerate, editing.message_delete):
        with pytest.raises(AppError) as refused:
            action(user=user, conversation=group, message_id=rows[-1].pk)
        assert refused.value.code == "busy", action.__name__
    assert nothing_changed(group, rows)


@pytest.mark.django_db
def test_refused_between_two_speakers_of_a_turn(user):
    group = make_group(user, "Mika", "Rin", "Aya")
    rows = finished_turn(group)  # Aya has yet to answer: the next run is about to start
    said = rows[0]
    said.turn.order = [c.pk for c in conversation_members(group)]
    said.turn.status = "open"
    said.turn.save()
    PipelineRun.objects.filter(conversation=group).update(finished_at=said.created_at)
    with pytest.raises(AppError) as refused:
        editing.message_regenerate(user=user, conversation=group, message_id=rows[-1].pk)
    assert refused.value.code == "busy"


@pytest.mark.django_db
def test_only_the_latest_reply_can_be_written_again(user):
    group = make_group(user, "Mika", "Rin")
    rows = finished_turn(group)
    for older in rows[:2]:  # the user's message and Mika's earlier reply
        with pytest.raises(AppError) as refused:
            editing.message_regenerate(user=user, conversation=group, message_id=older.pk)
        assert refused.value.code == "not_latest"
    assert nothing_changed(group, rows)


@pytest.mark.django_db
def test_a_reply_followed_by_a_message_of_yours_is_not_the_latest(user):
    group = make_group(user, "Mika", "Rin")
    rows = finished_turn(group)
    rows.append(add_user_message(group, "And now?", order=[]))
    with pytest.raises(AppError) as refused:
        editing.message_regenerate(user=user, conversation=group)
    assert refused.value.code == "nothing_to_regenerate"
    assert nothing_changed(group, rows)


@pytest.mark.django_db
@pytest.mark.parametrize("message_id", ["7", 1.5, True, None, -1, 0, MAX_ID + 1, 2**70])
def test_garbage_ids_are_not_found(user, message_id):
    """Flipping versions, writing again (where an id is optional) and deleting all refuse them."""
    group = make_group(user, "Mika", "Rin")
    rows = finished_turn(group)
    actions = [editing.message_show_alternative, editing.message_delete]
    if message_id is not None:
        actions.append(editing.message_regenerate)
    for action in actions:
        with pytest.raises(AppError) as refused:
            action(user=user, conversation=group, message_id=message_id)
        assert refused.value.code == "not_found", action.__name__
    assert nothing_changed(group, rows)


@pytest.mark.django_db
def test_another_groups_message_is_not_found(user):
    group = make_group(user, "Mika", "Rin")
    rows = finished_turn(group)
    other = make_group(user, "Zed", "Yan", title="Other")
    theirs = finished_turn(other, replies=("Zed",))
    for action in (editing.message_regenerate, editing.message_delete):
        with pytest.raises(AppError) as refused:
            action(user=user, conversation=group, message_id=theirs[-1].pk)
        assert refused.value.code == "not_found", action.__name__
    assert nothing_changed(group, rows) and nothing_changed(other, theirs)


@pytest.mark.django_db
def test_a_companion_that_left_the_group_does_not_write_again(user):
    group = make_group(user, "Mika", "Rin", "Aya")
    rows = finished_turn(group)
    Participant.objects.filter(conversation=group, companion=rows[-1].sender).delete()
    with pytest.raises(AppError) as refused:
        editing.message_regenerate(user=user, conversation=group)
    assert refused.value.code == "not_a_member"
    assert nothing_changed(group, rows)


@pytest.mark.django_db
def test_over_quota_nothing_is_stored(user, settings):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    use_up_quota.func(user)  # the helper is async for the socket tests; its plain function here
    group = make_group(user, "Mika", "Rin")
    rows = finished_turn(group)
    with pytest.raises(AppError) as refused:
        editing.message_regenerate(user=user, conversation=group, message_id=rows[-1].pk)
    assert refused.value.code == "quota_exceeded"
    assert nothing_changed(group, rows)


@pytest.mark.django_db
def test_another_users_group_is_refused(user, other_user):
    group = make_group(user, "Mika", "Rin")
    rows = finished_turn(group)
    with pytest.raises(PermissionError):
        editing.message_regenerate(user=other_user, conversation=group)
    assert nothing_changed(group, rows)


@pytest.mark.django_db
def test_versions_rotate_and_every_tab_hears(user, django_capture_on_commit_callbacks):
    group = make_group(user, "Mika", "Rin")
    *_, last = finished_turn(group)
    Message.objects.filter(pk=last.pk).update(content="second", alternatives=["first"])
    with django_capture_on_commit_callbacks() as callbacks:
        shown = editing.message_show_alternative(user=user, conversation=group, message_id=last.pk)
    assert (shown.content, shown.alternatives) == ("first", ["second"])
    last.refresh_from_db()
    assert (last.content, last.alternatives) == ("first", ["second"])
    assert len(callbacks) == 1
    with pytest.raises(AppError) as refused:  # a reply never written again has one version
        editing.message_show_alternative(user=user, conversation=group, message_id=last.pk - 1)
    assert refused.value.code == "no_alternatives"


# --- over the group socket, end to end ------------------------------------------------


@sync_to_async
def group_rows(group_id):
    messages = list(Message.objects.filter(conversation_id=group_id).order_by("pk"))
    runs = list(PipelineRun.objects.filter(conversation_id=group_id).order_by("created_at"))
    return messages, runs


@pytest.mark.django_db(transaction=True)
async def test_regenerate_over_the_socket_streams_the_new_text_and_flips_back(
    worker, use_fake_llm, connect_group, user
):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    use_fake_llm.set_reply(OLD)
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "message.send", "content": "Hello both", "client_id": "g1"})
    said = await client.receive_until("message.accepted")
    await client.receive_until("turn.done")
    before, _ = await group_rows(group.pk)
    last = before[-1]

    use_fake_llm.set_reply(NEW)
    client.events.clear()
    await client.send({"type": "message.regenerate", "message_id": last.pk, "client_id": "r1"})
    accepted = await client.receive_until("message.accepted")
    assert accepted["client_id"] == "r1" and accepted["message_id"] == said["message_id"]
    await client.receive_until("turn.done")

    [speaker] = client.of_type("turn.speaker")  # the same companion, named, and only that one
    assert (speaker["run_id"], speaker["sender"], speaker["message_id"]) == (
        accepted["run_id"],
        "Rin",
        last.pk,
    )
    tokens = [e for e in client.of_type("token") if e["run_id"] == accepted["run_id"]]
    assert "".join(e["text"] for e in tokens) == NEW and {e["sender"] for e in tokens} == {"Rin"}
    [done] = client.of_type("done")
    assert done["message_id"] == last.pk and done["sender"] == "Rin"
    assert client.of_type("state")[0]["companion_id"] == speaker["companion_id"]

    messages, runs = await group_rows(group.pk)
    assert [m.pk for m in messages] == [m.pk for m in before]  # rewritten in place, no new row
    assert (messages[-1].content, messages[-1].alternatives, messages[-1].is_complete) == (NEW, [OLD], True)
    assert [r.status for r in runs] == ["completed"] * 3 and runs[-1].reply_id == last.pk

    await client.send({"type": "message.alternative", "message_id": last.pk})
    updated = await client.receive_until("message.updated")
    assert (updated["message_id"], updated["content"], updated["versions"]) == (last.pk, OLD, 2)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"message_id": "abc"}, "bad_frame"),
        ({"message_id": 1.5}, "bad_frame"),
        ({"message_id": True}, "bad_frame"),
        ({"message_id": -5}, "not_found"),
        ({"message_id": 2**70}, "not_found"),
        ({"client_id": 5}, "bad_frame"),
    ],
)
async def test_bad_regenerate_frames_get_an_error_and_nothing_is_stored(connect_group, user, extra, code):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    rows = await sync_to_async(finished_turn)(group)
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "message.regenerate", **extra})
    error = await client.receive_until("error")
    assert error["code"] == code and "run_id" not in error
    await client.send({"type": "message.alternative", "message_id": extra.get("message_id", "x")})
    assert (await client.receive_until("error"))["code"] in ("bad_frame", "not_found")
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"  # the socket stays open
    assert await sync_to_async(nothing_changed)(group, rows)


@pytest.mark.django_db(transaction=True)
async def test_regenerate_while_a_turn_runs_is_busy_over_the_socket(connect_group, user):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    rows = await sync_to_async(finished_turn)(group, status="running")
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "message.regenerate", "message_id": rows[-1].pk})
    assert (await client.receive_until("error"))["code"] == "busy"
    assert await sync_to_async(nothing_changed)(group, rows)


@pytest.mark.django_db(transaction=True)
async def test_regenerate_over_quota_is_refused_over_the_socket(connect_group, user, settings):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    rows = await sync_to_async(finished_turn)(group)
    await use_up_quota(user)
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "message.regenerate"})
    assert (await client.receive_until("error"))["code"] == "quota_exceeded"
    assert await sync_to_async(nothing_changed)(group, rows)
