"""Reads of the chat: history pages, the LLM's context, the reconnect snapshot."""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import QuerySet

from chat import events, paging
from chat.conversation import conversation_for
from chat.models import Message, PipelineRun
from chat.publish import live_reply_key
from companions.selectors import LARGE_COLUMNS

HISTORY_PAGE = 50


def runs_with_companion() -> QuerySet[PipelineRun]:
    """Runs with their companion (its name, owner, scene), not the companion's large columns."""
    return PipelineRun.objects.select_related("companion").defer(*(f"companion__{c}" for c in LARGE_COLUMNS))


def history_page(companion, *, before_id: int | None = None, limit: int = HISTORY_PAGE) -> paging.Page:
    """Up to ``limit`` messages older than ``before_id``, oldest first (uses the companion index)."""
    messages = Message.objects.filter(companion=companion).select_related("image")
    return paging.page_before(messages, before_id=before_id, size=limit)


def llm_history(companion_id: int, *, upto_message_id: int, limit: int) -> list[tuple[str, str]]:
    """(role, content) of the last ``limit`` messages up to and including the user's message."""
    rows = (
        Message.objects.filter(companion_id=companion_id, id__lte=upto_message_id)
        .exclude(content="")
        .order_by("-created_at", "-id")
        .values_list("role", "content")[:limit]
    )
    return list(reversed(list(rows)))


def run_snapshot(run: PipelineRun | None) -> events.RunInfo | None:
    if run is None:
        return None
    content = ""
    if run.status in PipelineRun.ACTIVE:
        content = cache.get(live_reply_key(str(run.pk))) or ""
    conversation = conversation_for(run)
    if not content:
        content = conversation.reply_content()
    info: events.RunInfo = {
        "id": str(run.pk),
        "status": run.status,
        "progress": run.progress,
        "step": run.step,
        "content": content,
        "message_id": conversation.reply_id,
    }
    if run.status == PipelineRun.Status.FAILED:
        info["error"] = {"code": run.error_code, "message": run.error_text}
    return info


def companion_snapshot(companion) -> events.SnapshotEvent:
    """What a (re)connecting client needs: the state, and the latest run if it is live or failed."""
    latest = (
        PipelineRun.objects.filter(companion=companion, group__isnull=True).order_by("-created_at").first()
    )
    if latest is not None and latest.status not in (*PipelineRun.ACTIVE, PipelineRun.Status.FAILED):
        latest = None
    return events.snapshot(
        {"id": companion.pk, "name": companion.name, "state": companion.state}, run_snapshot(latest)
    )
