"""``{% load chat_steps %}{% step_labels %}``: the step registry's labels for the chat page's script.

Renders ``<script id="step-labels" type="application/json">`` holding
``{"analyze_context": "Reading your message…", …, "done": "Done"}``, keyed by
the ``step`` of the progress events (``chat.steps``).
"""

from __future__ import annotations

from django import template
from django.utils.html import json_script
from django.utils.safestring import SafeString

from chat import steps

register = template.Library()

ELEMENT_ID = "step-labels"


@register.simple_tag
def step_labels() -> SafeString:
    return json_script(steps.labels(), ELEMENT_ID)
