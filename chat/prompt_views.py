"""The owner's prompt view: exactly what the LLM was sent for one reply, and why.

The run's ``prompt_record`` (written by the reply step, ``chat.prompt_assembly``) is shown
as it is: the messages with their roles, the budget per part in tokens, the lorebook
entries that fired (and why) or did not fit, the memories used, whether the rolling
summary was in. Everything is escaped by the template: prompts hold user text, model
text and uploaded lorebooks.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedHttpRequest
from chat.selectors import prompt_record_for_user

# The budget's parts as the page names them (chat.budget.PARTS).
PART_LABELS = {
    "system": _("System prompt and instructions"),
    "newest": _("Newest messages"),
    "character": _("Character"),
    "pinned_memories": _("Pinned memories"),
    "lore": _("Lorebook entries"),
    "memories": _("Other memories"),
    "summary": _("Summary"),
    "examples": _("Example dialogue"),
    "history": _("Earlier messages"),
}


def prompt_page_context(record: dict[str, Any]) -> dict[str, Any]:
    """The record in the shape the page shows (missing keys read as empty)."""
    parts = [
        {"name": PART_LABELS.get(str(p.get("part")), str(p.get("part"))), "tokens": int(p.get("tokens") or 0)}
        for p in record.get("parts") or []
        if isinstance(p, dict)
    ]
    return {
        "sent": [m for m in record.get("messages") or [] if isinstance(m, dict)],
        "parts": parts,
        "context_length": record.get("context_length"),
        "reserve": record.get("reserve"),
        "margin": record.get("margin"),
        "total": record.get("total"),
        "exact": record.get("counter") == "tokenizer",
        "lore": record.get("lore") or [],
        "lore_over_budget": record.get("lore_over_budget") or [],
        "memories": record.get("memories") or [],
        "summary_used": bool(record.get("summary_used")),
    }


@login_required
@require_GET
def message_prompt(request: AuthenticatedHttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """One reply's prompt; 404 for anyone but its owner and for replies with no record."""
    message, record = prompt_record_for_user(request.user, message_id)
    if message.conversation_id != conversation_id:
        raise Http404
    context = {"message": message, "conversation": message.conversation, **prompt_page_context(record)}
    return render(request, "chat/prompt.html", context)
