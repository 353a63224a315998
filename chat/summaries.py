"""The rolling summary of a conversation: the older messages that no longer fit the prompt.

The reply step records in its run's ``prompt_record["dropped_upto_id"]`` the newest message
that did not fit the prompt. When that is newer than what the summary covers
(``Conversation.summary_upto``), the ``summarize`` after-step (``chat.steps.AFTER_STEPS``)
summarises incrementally: the summary so far plus the messages after it, up to a few
messages past the dropped one (so the next turns find them covered and the step does not
run every turn), never the last few, in chunks of ``SUMMARY_CHUNK_TOKENS``, at most
``SUMMARY_MAX_CHUNKS`` calls a pass (a long imported chat is caught up over a few turns).
Each chunk's summary is saved as soon as it is written, with a guarded update: if the user
edited the summary meanwhile (``summary_edited_at`` changed) or another pass moved it on,
the pass stops and writes nothing.

A summary the user edited (``summary_edited_at`` set) is kept word for word: later passes
add a summary of the newly dropped messages after it instead of rewriting it. The user
reads and edits it on the chat page (``conversation_set_summary``); clearing it has a
fresh one written from the older messages at the next pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import structlog
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.fields.json import KT
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat import memory_prompts
from chat.after_turn import AfterTurnCall, after_turn_call, may_spend
from chat.llm import estimate_tokens
from chat.models import Conversation, Message, Participant, PipelineRun
from chat.runs import RunId
from companionhub import pagecache
from companions.selectors import LARGE_COLUMNS

log = structlog.get_logger(__name__)

SUMMARY_MAX_CHARS = 8000  # what the user may write; a pass's summary is bounded by SUMMARY_MAX_TOKENS
# How far past the newest dropped message a pass goes, and how many of the newest messages it
# always leaves to the prompt.
SUMMARY_LOOKAHEAD = 8
SUMMARY_KEEP_RECENT = 6
CLAIM_SECONDS = 600  # one pass per conversation at a time; the claim expires if a worker dies


def summarize_after_turn(run_id: RunId) -> None:
    """The ``summarize`` after-step of a completed run."""
    if not settings.MEMORY_SUMMARY_ENABLED:
        return
    run = (
        PipelineRun.objects.filter(pk=run_id, status=PipelineRun.Status.COMPLETED)
        .select_related("companion__owner")
        .defer("prompt_record", *(f"companion__{column}" for column in LARGE_COLUMNS))
        .annotate(dropped=KT("prompt_record__dropped_upto_id"))
        .first()
    )
    dropped = _message_id(getattr(run, "dropped", None))
    if run is None or dropped is None:
        return
    conversation = Conversation.objects.only(
        "owner_id", "summary", "summary_upto_id", "summary_edited_at"
    ).get(pk=run.conversation_id)
    if conversation.summary_upto_id is not None and dropped <= conversation.summary_upto_id:
        return  # covered already
    owner = run.companion.owner
    if not may_spend(owner):
        return
    claim = f"chat:summarize:{conversation.pk}"
    if not cache.add(claim, str(run_id), CLAIM_SECONDS):
        return  # another pass is at it (a group's other reply); the next turn goes on from there
    try:
        with after_turn_call(run_id, companion_id=run.companion_id, kind="summary") as call:
            written = _summarize(call, conversation, dropped=dropped, user_name=owner.name_for_companions)
    finally:
        cache.delete(claim)
    if written:
        pagecache.user_pages_changed(conversation.owner_id)  # the chat page shows the summary
        log.info("summary_written", conversation_id=conversation.pk, chunks=written)


def _message_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def summary_target(conversation_id: int, *, dropped: int) -> int:
    """The newest message a pass covers: a little past ``dropped``, never the newest few."""
    newer = list(
        Message.objects.filter(conversation_id=conversation_id, pk__gt=dropped)
        .order_by("pk")
        .values_list("pk", flat=True)[: SUMMARY_LOOKAHEAD + SUMMARY_KEEP_RECENT]
    )
    extra = max(0, min(SUMMARY_LOOKAHEAD, len(newer) - SUMMARY_KEEP_RECENT))
    return newer[extra - 1] if extra else dropped


def _chunks(conversation: Conversation, *, target: int, user_name: str) -> Iterator[tuple[str, int]]:
    """Transcript chunks ("Name: text" lines) of at most ``SUMMARY_CHUNK_TOKENS``, each with
    the id of its last message."""
    budget = max(int(settings.SUMMARY_CHUNK_TOKENS), 50)
    rows = (
        Message.objects.filter(
            conversation_id=conversation.pk, pk__gt=conversation.summary_upto_id or 0, pk__lte=target
        )
        .select_related("sender")
        .only("pk", "role", "content", "sender__name")
        .order_by("pk")
    )
    lines: list[str] = []
    used = 0
    last = 0
    for message in rows.iterator(chunk_size=200):
        speaker = user_name if message.role == Message.Role.USER else message.sender.name  # type: ignore[union-attr]
        line = f"{speaker}: {' '.join(message.content.split())}"[: budget * 4]
        cost = estimate_tokens(line)
        if lines and used + cost > budget:
            yield "\n".join(lines), last
            lines, used = [], 0
        lines.append(line)
        used += cost
        last = message.pk
    if lines:
        yield "\n".join(lines), last


def _summarize(call: AfterTurnCall, conversation: Conversation, *, dropped: int, user_name: str) -> int:
    """Write the summary chunk by chunk; the number of chunks saved."""
    llm = call.llm()
    if llm is None:
        return 0
    target = summary_target(conversation.pk, dropped=dropped)
    speakers = list(
        Participant.objects.filter(conversation_id=conversation.pk)
        .order_by("position", "pk")
        .values_list("companion__name", flat=True)
    )
    written = 0
    for transcript, last in _chunks(conversation, target=target, user_name=user_name):
        if written >= max(int(settings.SUMMARY_MAX_CHUNKS), 1):
            break
        edited = conversation.summary_edited_at is not None
        messages = memory_prompts.build_summary_messages(
            user_name=user_name,
            speakers=speakers,
            previous=conversation.summary,
            transcript=transcript,
            append_only=edited,
        )
        completion = call.complete(llm, messages, max_tokens=max(int(settings.SUMMARY_MAX_TOKENS), 16))
        text = completion.text.strip() if completion is not None else ""
        if not text:
            break  # a failed or empty answer: the next turn tries again from here
        summary = f"{conversation.summary.rstrip()}\n\n{text}".strip() if edited else text
        if not _save(conversation, summary=summary, upto=last):
            log.info("summary_superseded", conversation_id=conversation.pk)
            break
        written += 1
    return written


def _same(field: str, value: object) -> Q:
    return Q(**{f"{field}__isnull": True}) if value is None else Q(**{field: value})


def _save(conversation: Conversation, *, summary: str, upto: int) -> bool:
    """Save one chunk's summary unless the user edited it, or another pass moved it, meanwhile."""
    now = timezone.now()
    changed = Conversation.objects.filter(
        _same("summary_upto_id", conversation.summary_upto_id),
        _same("summary_edited_at", conversation.summary_edited_at),
        pk=conversation.pk,
    ).update(summary=summary, summary_upto_id=upto, summary_updated_at=now)
    if changed:
        conversation.summary, conversation.summary_upto_id = summary, upto
    return bool(changed)


# --- the user's edits -----------------------------------------------------------------


def conversation_set_summary(
    *, user: User, conversation: Conversation, text: str, now: dt.datetime | None = None
) -> Conversation:
    """Replace the summary with the user's text, kept word for word from now on; empty text
    clears it (a fresh one is written from the older messages at the next pass)."""
    if conversation.owner_id != user.pk:
        raise PermissionError("not the owner")
    text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip()
    if len(text) > SUMMARY_MAX_CHARS:
        raise ValidationError(
            _("The summary can be at most %(limit)s characters long (this one has %(count)s).")
            % {"limit": SUMMARY_MAX_CHARS, "count": len(text)}
        )
    now = now or timezone.now()
    if text:
        fields = {"summary": text, "summary_edited_at": now, "summary_updated_at": now}
    else:
        fields = {"summary": "", "summary_upto": None, "summary_edited_at": None, "summary_updated_at": now}
    Conversation.objects.filter(pk=conversation.pk, owner_id=user.pk).update(**fields)
    conversation.refresh_from_db(
        fields=["summary", "summary_upto", "summary_edited_at", "summary_updated_at"]
    )
    pagecache.user_pages_changed(user.pk)
    log.info("summary_edited", conversation_id=conversation.pk, cleared=not text)
    return conversation
