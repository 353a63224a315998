"""Character cards: read V1/V2/V3 cards from JSON, PNG or CHARX; write V3 (or V2) JSON, PNG and CHARX.

The formats (https://github.com/malfoyslastname/character-card-spec-v2 and
https://github.com/kwaroran/character-card-spec-v3):

- V2: ``{"spec": "chara_card_v2", "spec_version": "2.0", "data": {...}}``
- V3: the same shape with ``spec: "chara_card_v3"``, ``spec_version: "3.0"`` and a few
  more fields (``nickname``, ``group_only_greetings``, ``assets``, ``creation_date``,
  ``modification_date``, ``creator_notes_multilingual``, ``source``)
- V1: the fields flat at the top level (older tools also used ``char_name``,
  ``char_persona``, ``world_scenario``, ``char_greeting``, ``example_dialogue``)
- PNG: the JSON, base64-encoded, in a ``tEXt`` chunk named ``chara`` (V2) or
  ``ccv3`` (V3, preferred when both are there). We write both, as SillyTavern does.
- CHARX: a zip with ``card.json`` (V3) at its root and assets under ``assets/``,
  named in ``data.assets`` by ``embeded://`` URIs (``charx``).

The modules: ``reading`` (bytes -> ParsedCard), ``charx`` (the zip, its
limits), ``files`` (which kind a file is), ``importing`` (ParsedCard ->
column values and ``config["card"]``), ``prose`` and ``building`` (companion
-> card, PNG, CHARX), ``stored`` (the kept card, read by prompts and chats).

What a round trip (import, then export) keeps: every V2/V3 field as written
(white space, ``\r\n``, numbers where text was expected, null), fields we do
not know (in ``data`` and beside it), ``extensions`` and the lorebook. What
may differ, on purpose:

- nothing is cut: a card with text over the limits (``companions.limits``:
  ``CONFIG_TEXT_LIMITS``, the columns' max_length, ``MAX_LIST_ITEMS``/
  ``LIST_ITEM_LIMITS``) is refused with a message naming the field;
- the extras (``EXTRAS``: the top-level copies, unknown fields, ``originals``,
  ``extensions``, the lorebook) are capped together at
  ``CARD_EXTRAS_MAX_BYTES``; over it the least useful are left out (then a
  text is exported as stored, trimmed of surrounding white space) and the
  user is told which;
- a V1 card, or one missing fields its spec requires, is exported with them
  (empty); ``spec_version`` follows the exported spec unless it is the card's;
- ``extensions.companionhub`` is ours, rewritten on export;
- a CHARX's embedded assets other than the main icon are not kept, so an
  export does not name them; the picture is the one we stored (re-encoded
  by ``media`` when it was imported), exported without further loss;
- a field edited here is exported as edited.
"""

from companionhub.macros import fill_macros  # one implementation, shared with lorebooks
from companions.cards.building import (
    PLACEHOLDER_COLOR,
    PLACEHOLDER_SIZE,
    build_card,
    build_card_charx,
    build_card_png,
    composed_fields,
    with_spec,
)
from companions.cards.fields import (
    COLUMN_FOR,
    CONFIG_TEXT_LIMITS,
    DEFAULT_LOOK,
    EXTRAS,
    EXTRAS_LABELS,
    FIELD_LABELS,
    HUB_EXTENSION,
    HUB_FIELDS,
    KNOWN_FIELDS,
    LIST_FIELDS,
    MAX_LIST_ITEMS,
    SPEC_V2,
    SPEC_V3,
    TEXT_FIELDS,
)
from companions.cards.files import parse_card_file
from companions.cards.importing import (
    ImportedCard,
    check_items,
    check_length,
    guess_gender,
    json_bytes,
    keep_extras_within,
    to_companion,
)
from companions.cards.reading import CardRejected, ParsedCard, png_text_chunks, too_large_message
from companions.cards.stored import card_greetings, card_prompt_defaults, stored_card, stored_card_of

__all__ = [
    "COLUMN_FOR",
    "CONFIG_TEXT_LIMITS",
    "DEFAULT_LOOK",
    "EXTRAS",
    "EXTRAS_LABELS",
    "FIELD_LABELS",
    "HUB_EXTENSION",
    "HUB_FIELDS",
    "KNOWN_FIELDS",
    "LIST_FIELDS",
    "MAX_LIST_ITEMS",
    "PLACEHOLDER_COLOR",
    "PLACEHOLDER_SIZE",
    "SPEC_V2",
    "SPEC_V3",
    "TEXT_FIELDS",
    "CardRejected",
    "ImportedCard",
    "ParsedCard",
    "build_card",
    "build_card_charx",
    "build_card_png",
    "card_greetings",
    "card_prompt_defaults",
    "check_items",
    "check_length",
    "composed_fields",
    "fill_macros",
    "guess_gender",
    "json_bytes",
    "keep_extras_within",
    "parse_card_file",
    "png_text_chunks",
    "stored_card",
    "stored_card_of",
    "to_companion",
    "too_large_message",
    "with_spec",
]
