"""Reads of conversations: lists, history pages, the LLM's context, the reconnect snapshot.

Every read a user triggers is scoped to its owner here (``*_for_user``);
another user's id is "not found", never "forbidden".
"""

from __future__ import annotations

from typing import NamedTuple

from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Left
from django.http import Http404
from django.shortcuts import get_object_or_404

from accounts.models import User
from chat import events, paging
from chat.language import translated
from chat.models import Conversation, Message, PipelineRun
from chat.publish import live_reply
from chat.runs import runs_with_companion
from companions.models import Companion
from companions.selectors import LARGE_COLUMNS, companions_without_large_columns

HISTORY_PAGE = 50
LAST_TEXT_CHARS = 80  # of a chat's newest message, in the lists


def _members_prefetch() -> Prefetch:
    # Pages and turns show names, pictures and scenes; the speaker's prompt loads its own row.
    members = (
        companions_without_large_columns()
        .select_related("header_image")
        .order_by("participations__position", "pk")
    )
    return Prefetch("companions", queryset=members, to_attr="members")


def conversation_members(conversation: Conversation) -> list[Companion]:
    """The conversation's companions in their standing order (the round-robin order)."""
    members = getattr(conversation, "members", None)
    if members is not None:
        return list(members)
    return list(
        companions_without_large_columns()
        .filter(participations__conversation=conversation)
        .select_related("header_image")
        .order_by("participations__position", "pk")
    )


def conversations_for_user(user: User) -> QuerySet[Conversation]:
    """The user's conversations, most recently active first, with their members."""
    return (
        Conversation.objects.filter(owner=user)
        .prefetch_related(_members_prefetch())
        .order_by("-updated_at", "-pk")
    )


def conversation_get_for_user(user: User, conversation_id: int) -> Conversation:
    """The user's own conversation, or 404 (another user's id reveals nothing)."""
    return get_object_or_404(conversations_for_user(user), pk=conversation_id)


def group_get_for_user(user: User, conversation_id: int) -> Conversation:
    """The user's own group conversation, or 404."""
    return get_object_or_404(conversations_for_user(user), pk=conversation_id, kind=Conversation.Kind.GROUP)


def conversation_find_for_user(user: User, conversation_id: int) -> Conversation | None:
    return conversations_for_user(user).filter(pk=conversation_id).first()


def latest_direct_conversation(companion: Companion) -> Conversation | None:
    """The companion's most recently active one-to-one chat, or None."""
    return (
        Conversation.objects.filter(
            owner_id=companion.owner_id, kind=Conversation.Kind.DIRECT, participants__companion=companion
        )
        .order_by("-updated_at", "-pk")
        .first()
    )


def chat_list(owner_id: int, *, companion: Companion | None = None) -> QuerySet[Conversation]:
    """The chats a list shows (a companion's, or all the user's), most recently active first,
    each with its newest message's start and time; no members (a group shows its title)."""
    chats = Conversation.objects.filter(owner_id=owner_id)
    if companion is not None:
        chats = chats.filter(participants__companion=companion)
    return with_last_message(chats.order_by("-updated_at", "-pk"))


def with_last_message(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """The conversations with ``last_text`` (the start of their newest message) and ``last_at``
    (its time), in the same query: subqueries on the conversation index, no rows of messages."""
    newest = Message.objects.filter(conversation=OuterRef("pk")).order_by("-created_at", "-id")
    return conversations.annotate(
        last_text=Subquery(newest.annotate(start=Left("content", LAST_TEXT_CHARS)).values("start")[:1]),
        last_at=Subquery(newest.values("created_at")[:1]),
    )


def history_page(
    conversation: Conversation, *, before_id: int | None = None, limit: int = HISTORY_PAGE
) -> paging.Page:
    """Up to ``limit`` messages older than ``before_id``, oldest first (the conversation index).

    Each reply's sender is the member the page has already loaded, shared by all its
    messages, not a companion joined and built again for every row (a companion that has
    left a group is looked up once).
    """
    messages = Message.objects.filter(conversation=conversation).select_related("image")
    page = paging.page_before(messages, before_id=before_id, size=limit)
    senders = {companion.pk: companion for companion in conversation_members(conversation)}
    missing = {m.sender_id for m in page.messages if m.sender_id and m.sender_id not in senders}
    if missing:
        left = companions_without_large_columns().select_related("header_image").filter(pk__in=missing)
        senders.update((companion.pk, companion) for companion in left)
    for message in page.messages:
        if message.sender_id is not None:
            message.sender = senders[message.sender_id]
    return page


class HistoryRow(NamedTuple):
    id: int
    role: str
    sender_id: int | None
    sender_name: str
    content: str


def llm_history(
    conversation_id: int, *, exclude_id: int | None, limit: int, after_id: int | None = None
) -> list[HistoryRow]:
    """The last ``limit`` messages with text, oldest first, for a reply's prompt.

    The reply being written (``exclude_id``) is left out; the greeting and the earlier
    replies of the turn are in, so each speaker hears what came before. ``after_id``: only
    messages after this one (the last message the rolling summary covers), in the
    conversation's order (time, then id).
    """
    messages = Message.objects.filter(conversation_id=conversation_id).exclude(content="")
    if exclude_id is not None:
        messages = messages.exclude(pk=exclude_id)
    if after_id is not None:
        upto = (
            Message.objects.filter(pk=after_id, conversation_id=conversation_id).values("created_at").first()
        )
        if upto is not None:
            messages = messages.filter(
                Q(created_at__gt=upto["created_at"]) | Q(created_at=upto["created_at"], pk__gt=after_id)
            )
    rows = messages.order_by("-created_at", "-id").values_list(
        "pk", "role", "sender_id", "sender__name", "content"
    )[:limit]
    return [
        HistoryRow(pk, role, sender_id, name or "", content)
        for pk, role, sender_id, name, content in reversed(list(rows))
    ]


def conversation_greeting(conversation_id: int) -> str:
    """The conversation's first message when a companion wrote it (its greeting), else ''."""
    first = (
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("created_at", "id")
        .values_list("role", "content")
        .first()
    )
    return first[1] if first is not None and first[0] == Message.Role.ASSISTANT else ""


def prompt_record_for_user(user: User, message_id: int) -> tuple[Message, dict]:
    """A reply of the user's and the record of the prompt that wrote it (its newest run's),
    or 404: another user's message, a user's own message, or a reply with no record."""
    message = get_object_or_404(
        Message.objects.select_related("conversation", "sender").defer(
            *(f"sender__{column}" for column in LARGE_COLUMNS)
        ),
        pk=message_id,
        conversation__owner=user,
        role=Message.Role.ASSISTANT,
    )
    record = (
        PipelineRun.objects.filter(reply_id=message.pk, conversation__owner=user)
        .exclude(prompt_record={})
        .order_by("-created_at")
        .values_list("prompt_record", flat=True)
        .first()
    )
    if not record:
        raise Http404("This reply has no prompt record.")
    return message, record


def run_snapshot(run: PipelineRun | None) -> events.RunInfo | None:
    if run is None:
        return None
    content = ""
    if run.status in PipelineRun.ACTIVE:
        content = live_reply(str(run.pk)) or ""
    if not content and run.reply_id:
        content = Message.objects.filter(pk=run.reply_id).values_list("content", flat=True).first() or ""
    info: events.RunInfo = {
        "id": str(run.pk),
        "status": run.status,
        "progress": run.progress,
        "step": run.step,
        "content": content,
        "message_id": run.reply_id,
        "companion_id": run.companion_id,
        "sender": run.companion.name,
    }
    if run.status == PipelineRun.Status.FAILED:
        # Stored as written (in English); shown in the language of the page or socket asking.
        info["error"] = {"code": run.error_code, "message": translated(run.error_text)}
    return info


def conversation_info(conversation: Conversation, members: list[Companion]) -> events.ConversationInfo:
    branched = None
    if conversation.branched_from_id:
        origin = Message.objects.filter(pk=conversation.branched_from_id).values_list(
            "conversation_id", flat=True
        )
        branched = {"conversation_id": origin.first() or 0, "message_id": conversation.branched_from_id}
    return {
        "id": conversation.pk,
        "kind": conversation.kind,
        "title": conversation.title,
        "companions": [{"id": c.pk, "name": c.name, "state": c.state} for c in members],
        "branched_from": branched,
    }


def conversation_snapshot(conversation: Conversation) -> events.SnapshotEvent | events.GroupSnapshotEvent:
    """What a (re)connecting client needs: the companions' state, and the latest run when it is
    live (with all its text so far) or failed (the page offers its retry)."""
    members = conversation_members(conversation)
    info = conversation_info(conversation, members)
    latest = runs_with_companion().filter(conversation=conversation).order_by("-created_at").first()
    if latest is not None and latest.status not in (*PipelineRun.LIVE, PipelineRun.Status.FAILED):
        latest = None
    if conversation.is_group:
        speaking: events.Speaker | None = None
        if latest is not None and latest.status in PipelineRun.LIVE:
            speaking = {"companion_id": latest.companion_id, "sender": latest.companion.name}
        group: events.GroupInfo = {
            "id": conversation.pk,
            "title": conversation.title,
            "companions": info["companions"],
        }
        return events.group_snapshot(group, run_snapshot(latest), speaking, info)
    companion = info["companions"][0] if info["companions"] else {"id": 0, "name": "", "state": {}}
    return events.snapshot(companion, run_snapshot(latest), info)
