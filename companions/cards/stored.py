"""The card a companion keeps (``Companion.config["card"]``), read for prompts, chats and exports."""

from __future__ import annotations

from typing import Any

from companions.models import Companion


def stored_card(companion: Companion) -> dict[str, Any]:
    """The ``config["card"]`` block, or {} when there is none or it is not an object.

    The column can be edited as raw JSON in the admin, so nothing that reads
    it assumes its shape.
    """
    return stored_card_of(companion.config)


def stored_card_of(config: Any) -> dict[str, Any]:
    """The ``card`` block of a companion's config value, or {}."""
    card = config.get("card") if isinstance(config, dict) else None
    return card if isinstance(card, dict) else {}


def stored_object(stored: dict[str, Any], name: str) -> dict[str, Any]:
    value = stored.get(name)
    return value if isinstance(value, dict) else {}


def stored_text(stored: dict[str, Any], name: str) -> str:
    value = stored.get(name)
    return value if isinstance(value, str) else ""


def stored_texts(stored: dict[str, Any], name: str) -> list[str]:
    value = stored.get(name)
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def card_greetings(companion: Companion) -> list[str]:
    """The companion's greetings as stored (macros unfilled): its own first, then the card's
    ``alternate_greetings``; empty ones left out. A new chat offers them as versions."""
    greetings = [companion.greeting, *stored_texts(stored_card(companion), "alternate_greetings")]
    return [text for text in greetings if text and text.strip()]


def card_prompt_defaults(companion: Companion) -> set[str]:
    """Catalogue fields still holding the stand-ins an import filled in (the card never said them).

    Prompts leave those out rather than tell the LLM things the card's own
    text may contradict; once the owner changes one, it counts.
    """
    defaults = stored_card(companion).get("defaults")
    if not isinstance(defaults, dict):
        return set()
    return {name for name, value in defaults.items() if getattr(companion, name, None) == value}
