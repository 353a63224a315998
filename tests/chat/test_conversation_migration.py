"""Folding one-to-one and group chats into conversations keeps every row it moves.

A database is built at the old schema (chat 0008, groups 0003) with the
historical models, filled with every kind of chat, message and run, then
migrated to the latest state and compared row by row with what was there.
Runs on SQLite and PostgreSQL; each test leaves the database migrated to the
latest state, as the other tests expect it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from tests.companions.factories import VALID

pytestmark = pytest.mark.django_db(transaction=True)

OLD = [("chat", "0008_message_reasoning"), ("groups", "0003_groupmessage_finish_reason")]
FIRST_NEW = ("chat", "0009_conversations")
MOVE = ("chat", "0010_move_chats_into_conversations")
BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LIVE = ("queued", "waiting", "running")

MESSAGE_FIELDS = (
    "role",
    "content",
    "image_id",
    "alternatives",
    "finish_reason",
    "is_complete",
    "created_at",
    "reasoning",
    "prompt_tokens",
    "completion_tokens",
)
RUN_FIELDS = (
    "companion_id",
    "status",
    "progress",
    "step",
    "want_image",
    "mode",
    "attempts",
    "error_code",
    "error_text",
    "step_durations",
    "analysis",
    "prompt_tokens",
    "completion_tokens",
    "created_at",
    "started_at",
    "finished_at",
)


def at(minutes: int) -> datetime:
    return BASE + timedelta(minutes=minutes)


def old_targets(graph) -> list[tuple[str, str]]:
    """chat and groups before the fold; every other app at its newest migration that predates it."""
    newer = set(graph.backwards_plan(FIRST_NEW))  # it and everything that depends on it
    targets = list(OLD)
    for app in sorted({app for app, _ in graph.nodes} - {"chat", "groups"}):
        for leaf in graph.leaf_nodes(app):
            older = [node for node in graph.forwards_plan(leaf) if node[0] == app and node not in newer]
            if older:
                targets.append(older[-1])
    return targets


def fresh_executor() -> MigrationExecutor:
    # A new executor reads which migrations are applied from the database again.
    return MigrationExecutor(connection)


def latest() -> list[tuple[str, str]]:
    return fresh_executor().loader.graph.leaf_nodes()


# --- the old database ------------------------------------------------------------------------


class OldChats:
    """Every kind of old chat row, made with the models of the old schema."""

    def __init__(self, apps) -> None:
        self.apps = apps
        self.User = apps.get_model("accounts", "User")
        self.Companion = apps.get_model("companions", "Companion")
        self.StoredImage = apps.get_model("media", "StoredImage")
        self.Message = apps.get_model("chat", "Message")
        self.Run = apps.get_model("chat", "PipelineRun")
        self.GroupChat = apps.get_model("groups", "GroupChat")
        self.GroupMessage = apps.get_model("groups", "GroupMessage")
        self.Usage = apps.get_model("accounts", "UsageTransaction")

    def user(self, name: str):
        return self.User.objects.create(username=name, email=f"{name}@example.com", password="!")

    def companion(self, owner, name: str):
        return self.Companion.objects.create(owner=owner, **{**VALID, "name": name})

    def image(self, companion):
        return self.StoredImage.objects.create(
            companion=companion,
            kind="generated",
            file=f"generated/{companion.pk}.webp",
            width=64,
            height=48,
            byte_size=1200,
            original_size=4800,
            prompt="a beach at dusk",
        )

    def message(self, companion, role: str, minute: int, content: str = "", **fields):
        message = self.Message.objects.create(companion=companion, role=role, content=content, **fields)
        # created_at is auto_now_add in the old schema: set it afterwards.
        self.Message.objects.filter(pk=message.pk).update(created_at=at(minute))
        return message

    def group(self, owner, title: str, members, minute: int, replies_per_turn=None):
        group = self.GroupChat.objects.create(creator=owner, title=title, replies_per_turn=replies_per_turn)
        group.companions.set(members)
        self.GroupChat.objects.filter(pk=group.pk).update(created_at=at(minute))
        return group

    def said(self, group, minute: int, content: str, reply_order):
        message = self.GroupMessage.objects.create(
            group=group, is_bot=False, content=content, reply_order=[c.pk for c in reply_order]
        )
        self.GroupMessage.objects.filter(pk=message.pk).update(created_at=at(minute))
        return message

    def replied(self, group, minute: int, sender, content: str, **fields):
        message = self.GroupMessage.objects.create(
            group=group, is_bot=True, sender=sender, content=content, **fields
        )
        self.GroupMessage.objects.filter(pk=message.pk).update(created_at=at(minute))
        return message

    def run(self, companion, minute: int, **fields):
        run = self.Run.objects.create(companion=companion, **fields)
        self.Run.objects.filter(pk=run.pk).update(created_at=at(minute))
        return run

    def charge(self, run, user, companion, minute: int):
        return self.Usage.objects.create(
            user=user,
            companion=companion,
            companion_name=companion.name,
            run=run,
            run_status=run.status,
            prompt_tokens=120,
            completion_tokens=40,
            served_by="demo",
            created_at=at(minute),
        )


def populate(apps) -> dict:
    """Two users, their companions, one-to-one chats, two groups, runs of every kind, usage rows."""
    db = OldChats(apps)
    alice, bob = db.user("alice"), db.user("bob")
    mika, rin, aya = db.companion(alice, "Mika"), db.companion(alice, "Rin"), db.companion(alice, "Aya")
    db.companion(alice, "Idle")  # never talked to: no conversation
    bo, kai, lee = db.companion(bob, "Bo"), db.companion(bob, "Kai"), db.companion(bob, "Lee")
    picture, group_picture = db.image(mika), db.image(aya)

    # Alice and Mika, one to one.
    m1 = db.message(mika, "user", 1, "hi")
    m2 = db.message(
        mika,
        "assistant",
        2,
        "Hello again!",
        alternatives=["Hello!", "Hi there!"],  # regenerated twice
        reasoning="She greets back warmly.",
        prompt_tokens=310,
        completion_tokens=12,
    )
    m3 = db.message(mika, "user", 3, "Tell me a story")
    m4 = db.message(mika, "assistant", 4, "Once upon a time, by the sea", finish_reason="length")
    m5 = db.message(mika, "user", 5, "Show me")
    m6 = db.message(mika, "assistant", 6, "Here I am.", image=picture)
    m7 = db.message(mika, "user", 7, "And then?")
    m8 = db.message(mika, "assistant", 8, "The waves", is_complete=False)  # being written
    # Bob and Bo: the reply failed.
    m9 = db.message(bo, "user", 9, "Evening")

    # Alice's group: Aya and Rin answer the first message, Rin and Mika the second.
    beach = db.group(alice, "Beach crew", [aya, mika, rin], 10, replies_per_turn=2)
    g1 = db.said(beach, 11, "Hello all", [aya, rin])
    g2 = db.replied(beach, 12, aya, "Hey!", alternatives=["Yo."], image=group_picture)
    g3 = db.replied(beach, 13, rin, "Hi there, I was just", finish_reason="length")
    g4 = db.said(beach, 14, "What now?", [rin, mika])
    g5 = db.replied(beach, 15, rin, "Swimming!")
    # Bob's group: Kai is writing, Lee and Bo come next.
    night = db.group(bob, "Night owls", [lee, bo, kai], 20)
    g6 = db.said(night, 21, "Who is awake?", [kai, lee, bo])
    g7 = db.replied(night, 22, kai, "", is_complete=False)

    runs = {
        "done": db.run(
            mika,
            30,
            user_message=m1,
            assistant_message=m2,
            status="completed",
            progress=100,
            step="done",
            prompt_tokens=310,
            completion_tokens=12,
            step_durations={"llm": 900},
            analysis={"served_by": "demo", "context": {"location": "beach"}},
            started_at=at(30),
            finished_at=at(31),
        ),
        "continue": db.run(
            mika,
            32,
            user_message=m3,
            assistant_message=m4,
            mode="continue",
            status="completed",
            analysis={"continue_from": 17, "usage_estimated": True, "served_by": "x"},
        ),
        "picture": db.run(
            mika, 33, user_message=m5, assistant_message=m6, status="completed", want_image=True
        ),
        "direct_running": db.run(
            mika, 34, user_message=m7, assistant_message=m8, status="running", step="llm", progress=40
        ),
        "failed": db.run(
            bo,
            35,
            user_message=m9,
            status="failed",
            attempts=3,
            error_code="llm_unavailable",
            error_text="The model server did not answer.",
        ),
        "group_done": db.run(
            aya,
            36,
            group=beach,
            group_user_message=g1,
            group_reply=g2,
            status="completed",
            want_image=True,
            analysis={"served_by": "demo"},
        ),
        "group_continue": db.run(
            rin,
            37,
            group=beach,
            group_user_message=g1,
            group_reply=g3,
            mode="continue",
            status="completed",
            analysis={"continue_from": 4},
        ),
        "group_second": db.run(
            rin, 38, group=beach, group_user_message=g4, group_reply=g5, status="completed"
        ),
        # Mika is busy in the one-to-one chat: her group reply waits for it.
        "group_waiting": db.run(
            mika, 39, group=beach, group_user_message=g4, status="queued", step="waiting"
        ),
        "group_running": db.run(
            kai, 40, group=night, group_user_message=g6, group_reply=g7, status="running", step="llm"
        ),
        # The user message of this one is gone: the migration cannot place it.
        "orphan": db.run(bo, 41, status="cancelled"),
    }
    usage = {
        "done": db.charge(runs["done"], alice, mika, 31),
        "group_done": db.charge(runs["group_done"], alice, aya, 37),
        "orphan": db.charge(runs["orphan"], bob, bo, 42),
    }
    return {
        "users": (alice.pk, bob.pk),
        "direct_companions": sorted({mika.pk, bo.pk}),
        "groups": (beach.pk, night.pk),
        "runs": {name: run.pk for name, run in runs.items()},
        "usage": {name: row.pk for name, row in usage.items()},
    }


def snapshot(apps) -> dict:
    """The old rows as stored (times as the database keeps them)."""
    Message = apps.get_model("chat", "Message")
    GroupChat = apps.get_model("groups", "GroupChat")
    GroupMessage = apps.get_model("groups", "GroupMessage")
    Run = apps.get_model("chat", "PipelineRun")
    Usage = apps.get_model("accounts", "UsageTransaction")
    Companion = apps.get_model("companions", "Companion")
    return {
        "direct": list(Message.objects.order_by("pk").values("id", "companion_id", *MESSAGE_FIELDS)),
        "groups": {
            group["id"]: {
                **group,
                "members": sorted(
                    GroupChat.objects.get(pk=group["id"]).companions.values_list("pk", flat=True)
                ),
                "messages": list(
                    GroupMessage.objects.filter(group_id=group["id"])
                    .order_by("created_at", "pk")
                    .values(
                        "id",
                        "is_bot",
                        "sender_id",
                        "content",
                        "image_id",
                        "is_complete",
                        "reply_order",
                        "alternatives",
                        "finish_reason",
                        "created_at",
                    )
                ),
            }
            for group in GroupChat.objects.order_by("pk").values(
                "id", "creator_id", "title", "replies_per_turn", "created_at"
            )
        },
        "runs": {
            run["id"]: run
            for run in Run.objects.values(
                "id",
                "user_message_id",
                "assistant_message_id",
                "group_id",
                "group_user_message_id",
                "group_reply_id",
                *RUN_FIELDS,
            )
        },
        "usage": dict(Usage.objects.values_list("pk", "run_id")),
        "owners": dict(Companion.objects.values_list("pk", "owner_id")),
    }


# --- the tests -------------------------------------------------------------------------------


def test_every_chat_moves_into_a_conversation():
    leaves = latest()
    try:
        executor = fresh_executor()
        before = old_targets(executor.loader.graph)
        executor.migrate(before)
        old_apps = executor.loader.project_state(before).apps
        made = populate(old_apps)
        old = snapshot(old_apps)

        executor = fresh_executor()
        executor.migrate(leaves)
        new_apps = executor.loader.project_state(leaves).apps
        check_migrated(new_apps, made, old)

        # A conversation made now gets an id after every migrated one (PostgreSQL: the sequence
        # was moved past the ids the migration gave explicitly).
        Conversation = new_apps.get_model("chat", "Conversation")
        migrated_ids = set(Conversation.objects.values_list("pk", flat=True))
        fresh = Conversation.objects.create(owner_id=made["users"][0], kind="direct")
        assert fresh.pk > max(migrated_ids)
        group = Conversation.objects.create(owner_id=made["users"][1], kind="group", title="Later")
        assert group.pk > fresh.pk
    finally:
        fresh_executor().migrate(leaves)  # leave the database as the other tests expect it


def check_migrated(apps, made, old) -> None:
    Conversation = apps.get_model("chat", "Conversation")
    Participant = apps.get_model("chat", "Participant")
    Message = apps.get_model("chat", "Message")
    Turn = apps.get_model("chat", "Turn")
    Run = apps.get_model("chat", "PipelineRun")
    Usage = apps.get_model("accounts", "UsageTransaction")

    assert "groups_groupchat" not in connection.introspection.table_names()
    assert "groups_groupmessage" not in connection.introspection.table_names()

    # --- conversations and their participants ------------------------------------------------
    group_ids = sorted(old["groups"])
    direct_of = {companion: group_ids[-1] + 1 + n for n, companion in enumerate(made["direct_companions"])}
    assert Conversation.objects.count() == len(old["groups"]) + len(made["direct_companions"]) == 4
    for group_id, group in old["groups"].items():
        conversation = Conversation.objects.get(pk=group_id)  # a group keeps its id
        assert conversation.kind == "group"
        assert conversation.title == group["title"]
        assert conversation.owner_id == group["creator_id"]
        assert conversation.replies_per_turn == group["replies_per_turn"]
        assert conversation.created_at == group["created_at"]
        assert conversation.updated_at == group["messages"][-1]["created_at"]
        assert conversation.branched_from_id is None
        members = list(
            Participant.objects.filter(conversation=conversation)
            .order_by("position")
            .values_list("companion_id", "position")
        )
        assert members == [(companion, n) for n, companion in enumerate(group["members"])]
    assert old["groups"][made["groups"][0]]["replies_per_turn"] == 2
    assert old["groups"][made["groups"][1]]["replies_per_turn"] is None

    for companion, conversation_id in direct_of.items():
        conversation = Conversation.objects.get(pk=conversation_id)
        own = [m for m in old["direct"] if m["companion_id"] == companion]
        assert conversation.kind == "direct"
        assert conversation.title == ""
        assert conversation.replies_per_turn is None
        assert conversation.owner_id == old["owners"][companion]
        assert conversation.created_at == own[0]["created_at"]
        assert conversation.updated_at == own[-1]["created_at"]
        assert list(
            Participant.objects.filter(conversation=conversation).values_list("companion_id", "position")
        ) == [(companion, 0)]
    group_members = sum(len(group["members"]) for group in old["groups"].values())
    assert Participant.objects.count() == group_members + len(direct_of)

    # --- messages ------------------------------------------------------------------------------
    group_messages = sum(len(group["messages"]) for group in old["groups"].values())
    assert Message.objects.count() == len(old["direct"]) + group_messages
    fields = ("conversation_id", "sender_id", "edited_at", *MESSAGE_FIELDS)
    for message in old["direct"]:
        migrated = Message.objects.filter(pk=message["id"]).values(*fields).get()  # its id is kept
        assistant = message["role"] == "assistant"
        assert migrated == {
            **{field: message[field] for field in MESSAGE_FIELDS},
            "conversation_id": direct_of[message["companion_id"]],
            "sender_id": message["companion_id"] if assistant else None,
            "edited_at": None,
        }
    new_id_of = {}  # old group message id -> new message id
    for group_id, group in old["groups"].items():
        moved = list(Message.objects.filter(conversation_id=group_id).order_by("created_at", "pk").values())
        assert len(moved) == len(group["messages"])
        for before, after in zip(group["messages"], moved, strict=True):
            new_id_of[before["id"]] = after["id"]
            assert {field: after[field] for field in (*MESSAGE_FIELDS, "sender_id", "edited_at")} == {
                "role": "assistant" if before["is_bot"] else "user",
                "sender_id": before["sender_id"] if before["is_bot"] else None,
                "content": before["content"],
                "image_id": before["image_id"],
                "alternatives": before["alternatives"],
                "finish_reason": before["finish_reason"],
                "is_complete": before["is_complete"],
                "created_at": before["created_at"],
                "reasoning": "",
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "edited_at": None,
            }
    direct_ids = {m["id"] for m in old["direct"]}
    assert not direct_ids & set(new_id_of.values())
    # Spot checks of what the data was made to hold.
    regenerated = Message.objects.get(content="Hello again!")
    assert regenerated.alternatives == ["Hello!", "Hi there!"]
    assert regenerated.reasoning == "She greets back warmly."
    assert Message.objects.filter(finish_reason="length").count() == 2
    assert Message.objects.filter(is_complete=False).count() == 2
    assert Message.objects.filter(image__isnull=False).count() == 2

    # --- turns ---------------------------------------------------------------------------------
    live_runs = [run for run in old["runs"].values() if run["status"] in LIVE]
    open_messages = {run["user_message_id"] for run in live_runs if run["user_message_id"]} | {
        new_id_of[run["group_user_message_id"]] for run in live_runs if run["group_user_message_id"]
    }
    expected_turns = {}
    for message in old["direct"]:
        if message["role"] == "user":
            expected_turns[message["id"]] = (
                direct_of[message["companion_id"]],
                [message["companion_id"]],
                message["created_at"],
            )
    for group_id, group in old["groups"].items():
        for message in group["messages"]:
            if not message["is_bot"]:
                expected_turns[new_id_of[message["id"]]] = (
                    group_id,
                    message["reply_order"],
                    message["created_at"],
                )
    assert Turn.objects.count() == len(expected_turns) == 8  # one per user message
    turn_of = {}
    for turn in Turn.objects.all():
        assert (turn.conversation_id, turn.order, turn.created_at) == expected_turns[turn.message_id]
        assert turn.status == ("open" if turn.message_id in open_messages else "done")
        turn_of[turn.message_id] = turn.pk
    assert Turn.objects.filter(status="open").count() == 3

    # --- runs ----------------------------------------------------------------------------------
    orphan = made["runs"]["orphan"]
    assert set(Run.objects.values_list("pk", flat=True)) == set(old["runs"]) - {orphan}
    for run_id, before in old["runs"].items():
        if run_id == orphan:
            continue
        after = (
            Run.objects.filter(pk=run_id)
            .values("conversation_id", "turn_id", "reply_id", "continue_from", "usage_estimated", *RUN_FIELDS)
            .get()
        )
        analysis = dict(before["analysis"])
        continue_from = analysis.pop("continue_from", None)
        estimated = analysis.pop("usage_estimated", False)
        if before["group_id"]:
            place = (
                before["group_id"],
                turn_of[new_id_of[before["group_user_message_id"]]],
                new_id_of.get(before["group_reply_id"]),
            )
        else:
            place = (
                direct_of[before["companion_id"]],
                turn_of[before["user_message_id"]],
                before["assistant_message_id"],
            )
        waiting = before["status"] == "queued" and before["step"] == "waiting"
        assert after == {
            **{field: before[field] for field in RUN_FIELDS},
            "conversation_id": place[0],
            "turn_id": place[1],
            "reply_id": place[2],
            "continue_from": continue_from if before["mode"] != "continue" else (continue_from or 0),
            "usage_estimated": estimated,
            "analysis": analysis,
            "status": "waiting" if waiting else before["status"],
            "step": "" if waiting else before["step"],
        }
    runs = made["runs"]
    assert Run.objects.filter(pk=runs["continue"]).values_list(
        "continue_from", "usage_estimated", "analysis"
    ).get() == (17, True, {"served_by": "x"})
    assert Run.objects.get(pk=runs["group_continue"]).continue_from == 4
    assert Run.objects.filter(pk=runs["done"]).values_list("continue_from", "usage_estimated").get() == (
        None,
        False,
    )
    assert Run.objects.filter(pk=runs["group_waiting"]).values_list("status", "step", "reply_id").get() == (
        "waiting",
        "",
        None,
    )
    assert Run.objects.get(pk=runs["failed"]).reply_id is None

    # --- the ledger ----------------------------------------------------------------------------
    usage = made["usage"]
    assert dict(Usage.objects.values_list("pk", "run_id")) == {
        usage["done"]: runs["done"],
        usage["group_done"]: runs["group_done"],
        usage["orphan"]: None,  # the run could not be placed; its charge stays
    }
    assert old["usage"][usage["orphan"]] == orphan


def test_going_back_is_refused_once_conversations_exist():
    leaves = latest()
    executor = fresh_executor()
    before = old_targets(executor.loader.graph)
    apps = executor.loader.project_state(leaves).apps
    owner = apps.get_model("accounts", "User").objects.create(
        username="carol", email="carol@example.com", password="!"
    )
    conversation = apps.get_model("chat", "Conversation").objects.create(owner=owner, kind="direct")
    try:
        with pytest.raises(IrreversibleError):
            executor.migrate(before)
        assert MOVE in MigrationRecorder(connection).applied_migrations()
    finally:
        fresh_executor().migrate(leaves)
    # Nothing was lost on the way.
    assert apps.get_model("chat", "Conversation").objects.filter(pk=conversation.pk).exists()


def test_going_back_works_on_an_empty_database():
    leaves = latest()
    executor = fresh_executor()
    before = old_targets(executor.loader.graph)
    try:
        executor.migrate(before)
        applied = MigrationRecorder(connection).applied_migrations()
        assert FIRST_NEW not in applied and MOVE not in applied
        tables = connection.introspection.table_names()
        assert "groups_groupchat" in tables and "chat_conversation" not in tables
    finally:
        fresh_executor().migrate(leaves)
    assert "chat_conversation" in connection.introspection.table_names()
