"""The scene sentence in templates: ``{% scene_sentence companion %}``."""

from __future__ import annotations

from django import template
from django.utils.html import json_script
from django.utils.safestring import SafeString

from companions.models import Companion
from companions.scene import scene_grammar, scene_sentence

register = template.Library()


@register.simple_tag
def companion_scene(companion: Companion) -> str:
    """ "Mika is at the park, wearing sportswear, working out." (escaped by the template)."""
    return scene_sentence(
        name=companion.name,
        outfit=companion.current_outfit,
        location=companion.current_location,
        action=companion.current_action,
    )


@register.simple_tag
def scene_grammar_script() -> SafeString:
    """The sentence's words as JSON, for the chat page's script to build the same sentence."""
    return json_script(scene_grammar(), "scene-grammar")
