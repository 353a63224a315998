"""Move every chat into the one conversation model.

* Each group becomes a group conversation with the **same id** (so
  ``/ws/group/<id>/`` and ``/groups/<id>/`` keep naming it), its companions
  participants in their standing order (by id), its messages rows of
  ``chat.Message`` (new ids), each user message a turn with its reply order.
* Each companion that has one-to-one messages gets one conversation (ids after
  the groups'), its messages moved in place (their ids are kept); each user
  message becomes a turn answered by the companion.
* Runs point at their conversation, turn and reply; what ``analysis`` hid
  (``continue_from``, estimated usage, the "waiting" step) becomes columns.
  A run whose user message is gone cannot be placed and is deleted (its usage
  row, if any, stays: the ledger keeps a deleted run's charge); a stale
  second active run of a companion or a conversation (a crash can leave one)
  is failed, as the stuck-run sweep would have.

Works on SQLite and PostgreSQL; tests/chat/test_conversation_migration.py
builds a populated database at the old schema and compares row by row.
"""

from __future__ import annotations

from django.db import migrations
from django.utils import timezone
from django.db.migrations.exceptions import IrreversibleError

BATCH = 500


def _chunks(rows, size=BATCH):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def forwards(apps, schema_editor):
    db = schema_editor.connection.alias
    Conversation = apps.get_model("chat", "Conversation")
    Participant = apps.get_model("chat", "Participant")
    Message = apps.get_model("chat", "Message")
    Turn = apps.get_model("chat", "Turn")
    PipelineRun = apps.get_model("chat", "PipelineRun")
    Companion = apps.get_model("companions", "Companion")
    GroupChat = apps.get_model("groups", "GroupChat")
    GroupMessage = apps.get_model("groups", "GroupMessage")

    conversations = Conversation.objects.using(db)
    messages = Message.objects.using(db)
    turns = Turn.objects.using(db)
    runs = PipelineRun.objects.using(db)

    # --- groups: same ids ----------------------------------------------------------------
    group_message_ids: dict[int, int] = {}  # old GroupMessage id -> new Message id
    turn_of_group_message: dict[int, int] = {}  # old user GroupMessage id -> Turn id
    last_group_id = 0
    for group in GroupChat.objects.using(db).order_by("pk"):
        last_group_id = group.pk
        old = list(GroupMessage.objects.using(db).filter(group_id=group.pk).order_by("created_at", "pk"))
        conversations.create(
            pk=group.pk,
            owner_id=group.creator_id,
            kind="group",
            title=group.title,
            replies_per_turn=group.replies_per_turn,
            created_at=group.created_at,
            updated_at=old[-1].created_at if old else group.created_at,
        )
        Conversation.objects.using(db).filter(pk=group.pk).update(created_at=group.created_at)
        members = group.companions.using(db).order_by("pk").values_list("pk", flat=True)
        Participant.objects.using(db).bulk_create(
            [Participant(conversation_id=group.pk, companion_id=cid, position=n) for n, cid in enumerate(members)]
        )
        for batch in _chunks(old):
            made = messages.bulk_create(
                [
                    Message(
                        conversation_id=group.pk,
                        role="assistant" if gm.is_bot else "user",
                        sender_id=gm.sender_id if gm.is_bot else None,
                        content=gm.content,
                        image_id=gm.image_id,
                        is_complete=gm.is_complete,
                        finish_reason=gm.finish_reason,
                        alternatives=gm.alternatives,
                        created_at=gm.created_at,
                    )
                    for gm in batch
                ]
            )
            for gm, new in zip(batch, made, strict=True):
                group_message_ids[gm.pk] = new.pk
        for gm in old:
            if not gm.is_bot:
                turn = turns.create(
                    conversation_id=group.pk,
                    message_id=group_message_ids[gm.pk],
                    order=list(gm.reply_order or []),
                    status="done",
                    created_at=gm.created_at,
                )
                turn_of_group_message[gm.pk] = turn.pk

    # --- one-to-one chats: one conversation per companion with messages --------------------
    next_id = last_group_id + 1
    conversation_of_companion: dict[int, int] = {}
    with_messages = messages.filter(companion__isnull=False).values_list("companion_id", flat=True).distinct()
    for companion_id in sorted(set(with_messages)):
        companion = Companion.objects.using(db).only("owner_id").get(pk=companion_id)
        own = messages.filter(companion_id=companion_id)
        first = own.order_by("created_at", "pk").values_list("created_at", flat=True).first()
        last = own.order_by("-created_at", "-pk").values_list("created_at", flat=True).first()
        conversations.create(
            pk=next_id, owner_id=companion.owner_id, kind="direct", title="", updated_at=last
        )
        Conversation.objects.using(db).filter(pk=next_id).update(created_at=first)
        Participant.objects.using(db).create(conversation_id=next_id, companion_id=companion_id, position=0)
        own.filter(role="assistant").update(conversation_id=next_id, sender_id=companion_id)
        own.filter(role="user").update(conversation_id=next_id, sender_id=None)
        user_messages = list(own.filter(role="user").order_by("created_at", "pk").values_list("pk", "created_at"))
        for batch in _chunks(user_messages):
            turns.bulk_create(
                [
                    Turn(conversation_id=next_id, message_id=pk, order=[companion_id], status="done", created_at=at)
                    for pk, at in batch
                ]
            )
        conversation_of_companion[companion_id] = next_id
        next_id += 1

    if schema_editor.connection.vendor == "postgresql" and next_id > 1:
        table = Conversation._meta.db_table
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)",  # noqa: S608 (our table name)
                [next_id - 1],
            )

    # --- runs ------------------------------------------------------------------------------
    turn_of_message = dict(turns.values_list("message_id", "pk"))
    orphans = []
    for run in runs.all().iterator(chunk_size=BATCH):
        analysis = dict(run.analysis or {})
        fields = {
            "continue_from": analysis.pop("continue_from", None),
            "usage_estimated": bool(analysis.pop("usage_estimated", False)),
            "analysis": analysis,
        }
        if run.mode == "continue" and fields["continue_from"] is None:
            fields["continue_from"] = 0
        if run.status == "queued" and run.step == "waiting":
            fields.update(status="waiting", step="")
        if run.group_id:
            turn_id = turn_of_group_message.get(run.group_user_message_id)
            fields.update(
                conversation_id=run.group_id,
                reply_id=group_message_ids.get(run.group_reply_id),
            )
        else:
            turn_id = turn_of_message.get(run.user_message_id)
            fields.update(
                conversation_id=conversation_of_companion.get(run.companion_id),
                reply_id=run.assistant_message_id,
            )
        if turn_id is None or fields["conversation_id"] is None:
            orphans.append(run.pk)
            continue
        runs.filter(pk=run.pk).update(turn_id=turn_id, **fields)
    if orphans:
        runs.filter(pk__in=orphans).delete()
    # The new unique indexes allow one active (queued or running) run per companion and per
    # conversation. The old code kept that too, but a crash can leave a stale run behind: all
    # but the newest are failed as the stuck-run sweep would have failed them.
    for field in ("companion_id", "conversation_id"):
        active = runs.filter(status__in=("queued", "running")).order_by("-created_at")
        seen = set()
        for run_id, key in active.values_list("pk", field):
            if key in seen:
                runs.filter(pk=run_id).update(
                    status="failed",
                    finished_at=timezone.now(),
                    error_code="timed_out",
                    error_text="The reply took too long and was stopped. Please try again.",
                )
            seen.add(key)
    # A turn still being answered stays open.
    open_turns = runs.filter(status__in=("queued", "waiting", "running")).values_list("turn_id", flat=True)
    turns.filter(pk__in=list(open_turns)).update(status="open")


def backwards(apps, schema_editor):
    """Only an empty database goes back: the old two-stack shape cannot hold branches or
    several chats per companion, so moving real chats back would lose them."""
    Conversation = apps.get_model("chat", "Conversation")
    if Conversation.objects.using(schema_editor.connection.alias).exists():
        raise IrreversibleError(
            "Chats are in the conversation model now; restore a backup to go back."
        )


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0009_conversations"),
        ("groups", "0003_groupmessage_finish_reason"),
        ("companions", "0004_companion_image_seed_and_reference"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
