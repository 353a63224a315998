"""``{% companion_chats companion %}``: a companion's chats on pages of other apps (its page)."""

from __future__ import annotations

from typing import Any

from django import template

from chat.selectors import chat_list
from companions.models import Companion

register = template.Library()


@register.inclusion_tag("chat/_chat_list.html", takes_context=True)
def companion_chats(context: template.Context, companion: Companion) -> dict[str, Any]:
    return {
        "companion": companion,
        "chats": chat_list(companion.owner_id, companion=companion)[:30],
        "current": None,
        "csrf_token": context.get("csrf_token"),
    }
