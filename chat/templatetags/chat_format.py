"""Safe formatting of chat text: escape first, then turn *actions* into italics."""

from __future__ import annotations

import re

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

EMPHASIS = re.compile(r"\*([^*\n]{1,500})\*")


@register.filter
def emphasis(text: str) -> SafeString:
    escaped = conditional_escape(text)
    return mark_safe(EMPHASIS.sub(r"<em>\1</em>", escaped))  # noqa: S308  (input escaped above)
