"""The card fields we know, where each is kept, and the limits on what a card may bring in
(``companions.limits``: a card over them is refused, never cut).

One table for the reader (``importing``) and the writer (``building``), so
a field cannot be read into one place and written from another.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy

from companions.limits import CARD_LIST_ITEM_MAX_CHARS, CARD_LIST_MAX_ITEMS, CARD_TEXT_MAX_CHARS

SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"
SPEC_VERSIONS = {SPEC_V2: "2.0", SPEC_V3: "3.0"}
# Our own block in ``data.extensions``: the look and identity a card has no words for,
# so an export imports back into the same companion.
HUB_EXTENSION = "companionhub"

TEXT_FIELDS = (
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "creator",
    "character_version",
    "nickname",  # V3
)
LIST_FIELDS = ("alternate_greetings", "tags", "group_only_greetings")  # the last is V3
KNOWN_FIELDS = frozenset((*TEXT_FIELDS, *LIST_FIELDS, "extensions", "character_book"))
# V3 fields we do not use but keep (with the unknown fields) and export: assets,
# creation_date, modification_date, creator_notes_multilingual, source.
V1_ALIASES = {
    "char_name": "name",
    "char_persona": "personality",
    "world_scenario": "scenario",
    "char_greeting": "first_mes",
    "example_dialogue": "mes_example",
}
# Top-level fields SillyTavern repeats from ``data`` for V1 readers: refreshed from the
# exported values, so an edited companion does not carry a stale copy.
OUTER_MIRRORS = {
    "name": "name",
    "description": "description",
    "personality": "personality",
    "scenario": "scenario",
    "first_mes": "first_mes",
    "mes_example": "mes_example",
    "creatorcomment": "creator_notes",
    "tags": "tags",
}

# Card field -> Companion column (the column's max_length is the field's limit).
COLUMN_FOR = {
    "name": "name",
    "description": "backstory",
    "first_mes": "greeting",
    "system_prompt": "system_prompt",
}
# Card fields kept in config["card"], with their limits (they reach the prompt or the page).
CONFIG_TEXT_LIMITS = {
    name: CARD_TEXT_MAX_CHARS[name]
    for name in (
        "personality",
        "scenario",
        "mes_example",
        "post_history_instructions",
        "creator_notes",
        "creator",
        "character_version",
        "nickname",
    )
}
# How the page names card fields (e.g. when one is too long), in the user's language; each
# field a card may bring text in has one, so no raw field name reaches the page.
FIELD_LABELS = {
    "name": gettext_lazy("name"),
    "description": gettext_lazy("description"),
    "personality": gettext_lazy("personality"),
    "scenario": gettext_lazy("scenario"),
    "first_mes": gettext_lazy("first message"),
    "mes_example": gettext_lazy("example messages"),
    "creator_notes": gettext_lazy("creator notes"),
    "system_prompt": gettext_lazy("system prompt"),
    "post_history_instructions": gettext_lazy("post-history instructions"),
    "creator": gettext_lazy("creator"),
    "character_version": gettext_lazy("version"),
    "nickname": gettext_lazy("nickname"),
    "alternate_greetings": gettext_lazy("alternate greetings"),
    "tags": gettext_lazy("tags"),
    "group_only_greetings": gettext_lazy("group-only greetings"),
}
# What a card carries that no column or prompt field holds, kept so an export gives it back
# (the lorebook also goes into prompts). Over the size limit the least useful are left
# out: what only an export would miss goes before the lorebook.
EXTRAS = ("outer", "unknown", "originals", "extensions", "character_book")
EXTRAS_LABELS = {
    "outer": gettext_lazy("top-level copies of the fields"),
    "unknown": gettext_lazy("fields we do not use"),
    "originals": gettext_lazy("fields as the card wrote them (spaces and line ends), for export"),
    "extensions": gettext_lazy("extensions"),
    "character_book": gettext_lazy("lorebook"),
}
MAX_LIST_ITEMS = CARD_LIST_MAX_ITEMS
LIST_ITEM_LIMITS = CARD_LIST_ITEM_MAX_CHARS

# A card says nothing about the catalogue's look; these stand in until the owner edits them.
DEFAULT_LOOK: dict[str, Any] = {
    "style": "semi_realistic",
    "age": 25,
    "ethnicity": "mixed",
    "skin_tone": "medium",
    "hair_color": "brown",
    "hair_style": "long_straight",
    "eye_color": "brown",
    "body_type": "average",
    "height": "average",
    "chest": "medium",
    "personality_traits": ["curious"],
    "hobbies": [],
    "occupation": "writer",
    "relationship": "friend",
}
# Columns the hub extension may carry back (everything the wizard asks that a card lacks).
HUB_FIELDS = (
    "style",
    "gender",
    "age",
    "ethnicity",
    "skin_tone",
    "hair_color",
    "hair_style",
    "eye_color",
    "body_type",
    "height",
    "chest",
    "distinguishing_features",
    "personality_traits",
    "hobbies",
    "occupation",
    "relationship",
    "visual_prompt",
)
# Card fields an export may write as prose composed from the wizard's answers.
COMPOSABLE = ("description", "personality", "scenario")
