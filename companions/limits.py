"""How much text a character may have: one table for the model, the forms, card import and export.

The limits are generous on purpose: popular cards carry descriptions and
example dialogues of many thousand characters, and a card is never cut to
fit. Text over a limit is refused with a message naming the field (the
settings form's errors, the card import's refusal), so nothing is lost
without the owner knowing.

Keys are the card fields' names (``description`` is the ``backstory``
column, ``first_mes`` the ``greeting`` column). No imports from the app:
``companions.models`` reads these.
"""

from __future__ import annotations

LONG_TEXT_MAX_CHARS = 50_000  # description, personality, scenario, example messages
PROMPT_TEXT_MAX_CHARS = 20_000  # greetings, system prompt, post-history instructions, creator notes
NAME_MAX_CHARS = 50  # the ``name`` column
SHORT_TEXT_MAX_CHARS = 200  # creator, version, nickname

CARD_TEXT_MAX_CHARS: dict[str, int] = {
    "name": NAME_MAX_CHARS,
    "description": LONG_TEXT_MAX_CHARS,
    "personality": LONG_TEXT_MAX_CHARS,
    "scenario": LONG_TEXT_MAX_CHARS,
    "mes_example": LONG_TEXT_MAX_CHARS,
    "first_mes": PROMPT_TEXT_MAX_CHARS,
    "system_prompt": PROMPT_TEXT_MAX_CHARS,
    "post_history_instructions": PROMPT_TEXT_MAX_CHARS,
    "creator_notes": PROMPT_TEXT_MAX_CHARS,
    "creator": SHORT_TEXT_MAX_CHARS,
    "character_version": SHORT_TEXT_MAX_CHARS,
    "nickname": SHORT_TEXT_MAX_CHARS,
}
# Lists of texts: how many items, and how long each may be.
CARD_LIST_MAX_ITEMS: dict[str, int] = {"alternate_greetings": 50, "group_only_greetings": 50, "tags": 100}
CARD_LIST_ITEM_MAX_CHARS: dict[str, int] = {
    "alternate_greetings": PROMPT_TEXT_MAX_CHARS,
    "group_only_greetings": PROMPT_TEXT_MAX_CHARS,
    "tags": 100,
}
