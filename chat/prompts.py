"""Prompts: what the LLM and the image model are asked, built from the companion.

Plain functions of plain values, so each rule (outfit filtering, history
trimming, JSON extraction) is tested without a back end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.translation import get_language_info

from accounts.language import user_language
from chat import lorebook
from chat.jsonout import first_json_object
from companions import catalogue
from companions.cards import card_prompt_defaults, fill_macros, stored_card
from companions.models import Companion

ANALYSIS_MARKER = "Reply with JSON only"
CONTINUE_PROMPT = "(Continue your last reply exactly where it stopped. Do not repeat anything.)"


@dataclass(frozen=True)
class SceneState:
    outfit: str
    location: str
    action: str
    wants_image: bool = False


def describe_appearance(companion: Companion) -> str:
    """One line of looks, in the catalogue's prompt words."""
    parts = [
        f"{companion.age}-year-old",
        catalogue.prompt_phrase("ethnicity", companion.ethnicity),
        catalogue.prompt_phrase("gender", companion.gender),
        catalogue.prompt_phrase("height", companion.height),
        catalogue.prompt_phrase("body_type", companion.body_type),
        catalogue.prompt_phrase("skin_tone", companion.skin_tone),
        catalogue.prompt_phrase("hair_color", companion.hair_color),
        catalogue.prompt_phrase("hair_style", companion.hair_style),
        catalogue.prompt_phrase("eye_color", companion.eye_color),
        catalogue.prompt_phrase("chest", companion.chest),
        companion.distinguishing_features,
    ]
    return ", ".join(p for p in parts if p)


# The look fields an imported card leaves at stand-in values (see companions.cards.DEFAULT_LOOK).
LOOK_FIELDS = frozenset(
    ("age", "ethnicity", "skin_tone", "hair_color", "hair_style", "eye_color", "body_type", "height", "chest")
)


def card_text(companion: Companion, field: str) -> str:
    """A character card's text kept in config (personality, scenario, ...), or ''."""
    value = stored_card(companion).get(field)
    return value if isinstance(value, str) else ""


def _example_dialogue(text: str) -> str:
    """A card's example messages, without the ``<START>`` separators cards use between examples."""
    return re.sub(r"(?im)^\s*<START>\s*$", "", text).strip()


def card_lore(
    companion: Companion, *, user_name: str, history: list[tuple[str, str]]
) -> list[lorebook.LoreEntry]:
    """The entries of the card's lorebook that the recent conversation brings in (see ``chat.lorebook``)."""
    book = stored_card(companion).get("character_book")
    if book is None:
        return []
    return lorebook.select_entries(
        book,
        recent_messages=[content for _, content in history],
        char=companion.name,
        user=user_name,
        token_budget=settings.CHAT_LOREBOOK_TOKEN_BUDGET,
    )


def _lore_block(lore: Sequence[lorebook.LoreEntry], position: str) -> str:
    """Lore entries at one position, fenced off so the model reads them as background, not as chat."""
    texts = [entry.content for entry in lore if entry.position == position]
    if not texts:
        return ""
    body = "\n\n".join(texts)
    return f"[World info: background facts, use them when relevant]\n{body}\n[End of world info]"


def reply_language_name(companion: Companion) -> str:
    """The English name of the language the companion replies in (prompts stay English).

    The companion's own ``reply_language`` if set, else its owner's language,
    else the site's (``accounts.language.user_language``).
    """
    code = companion.reply_language or user_language(companion.owner)
    return str(get_language_info(code)["name"])


def build_system_prompt(
    companion: Companion, *, user_name: str, lore: Sequence[lorebook.LoreEntry] = ()
) -> str:
    """Who the companion is, where they are, and how to reply.

    Imported character cards add their personality, scenario and example
    dialogue; catalogue answers the import only filled in as stand-ins are
    left out (the card's own text describes the character), and the card
    placeholders ``{{char}}``/``{{user}}`` get the real names. ``lore`` (from
    ``card_lore``) goes before or after the character's description, as each
    entry asks.
    """
    stand_ins = card_prompt_defaults(companion)

    def fill(text: str) -> str:
        return fill_macros(text, char=companion.name, user=user_name).strip()

    traits = ", ".join(catalogue.prompt_phrase("personality_traits", t) for t in companion.personality_traits)
    hobbies = ", ".join(catalogue.prompt_phrase("hobbies", h) for h in companion.hobbies)
    personality = fill(card_text(companion, "personality"))
    scenario = fill(card_text(companion, "scenario"))
    examples = fill(_example_dialogue(card_text(companion, "mes_example")))
    backstory = fill(companion.backstory)
    lines = [
        f"You are {companion.name}, chatting with {user_name}. Stay in character; never say you are an AI.",
        ""
        if "relationship" in stand_ins
        else f"You are {user_name}'s {catalogue.prompt_phrase('relationship', companion.relationship)}.",
        _lore_block(lore, lorebook.BEFORE_CHAR),
        f"Personality: {traits}." if traits and "personality_traits" not in stand_ins else "",
        f"Personality: {personality}" if personality else "",
        ""
        if "occupation" in stand_ins
        else f"Occupation: {catalogue.prompt_phrase('occupation', companion.occupation)}.",
        f"Hobbies: {hobbies}." if hobbies else "",
        "" if stand_ins >= LOOK_FIELDS else f"Appearance: {describe_appearance(companion)}.",
        f"Backstory: {backstory}" if backstory else "",
        f"Scenario: {scenario}" if scenario else "",
        _lore_block(lore, lorebook.AFTER_CHAR),
        (
            f"Right now you are {companion.current_location}, {companion.current_outfit}, "
            f"{companion.current_action}."
        ),
        "Reply in a natural, warm way in a few sentences. Describe actions in *asterisks*.",
        f"Always reply in {reply_language_name(companion)}.",
        f"Examples of how you talk (style only, not part of this conversation):\n{examples}"
        if examples
        else "",
        fill(companion.system_prompt),
    ]
    return "\n".join(line for line in lines if line)


def build_chat_messages(
    companion: Companion, *, user_name: str, history: list[tuple[str, str]]
) -> list[dict[str, str]]:
    """System prompt plus the conversation so far (oldest first), the user's message last.

    A card's post-history instructions follow the conversation as a last
    system message, where character cards (and SillyTavern) put them: the
    model reads them right before it answers. The card's lorebook entries
    whose keys the recent messages mention join the system prompt.
    """
    lore = card_lore(companion, user_name=user_name, history=history)
    messages = [{"role": "system", "content": build_system_prompt(companion, user_name=user_name, lore=lore)}]
    messages += [{"role": role, "content": content} for role, content in history if content]
    return messages + _post_history(companion, user_name=user_name)


def _post_history(companion: Companion, *, user_name: str) -> list[dict[str, str]]:
    after = fill_macros(
        card_text(companion, "post_history_instructions"), char=companion.name, user=user_name
    )
    return [{"role": "system", "content": after.strip()}] if after.strip() else []


def build_group_chat_messages(
    companion: Companion, *, user_name: str, others: list[str], history: list[tuple[str, str]]
) -> list[dict[str, str]]:
    """The same prompt as a one-to-one chat, told it is a group, with each line labelled "Name: text".

    ``history`` is (role, labelled text): the companion's own lines are the
    assistant's, everyone else's (the user's and the other companions') are
    user lines, so a later speaker sees what the earlier ones said this turn.
    The speaker's own lorebook applies, scanned over these labelled lines (so,
    as in SillyTavern, a key that is a speaker's name fires when they speak).
    """
    names = ", ".join(others)
    group_note = (
        f"This is a group conversation between {user_name} and several companions: you ({companion.name})"
        f" and {names}. Each line of the conversation starts with its speaker's name. Reply only as"
        f" {companion.name}, with your own words, without a name label; never write lines for {user_name}"
        f" or {names}."
    )
    lore = card_lore(companion, user_name=user_name, history=history)
    system = build_system_prompt(companion, user_name=user_name, lore=lore) + "\n" + group_note
    messages = [{"role": "system", "content": system}]
    messages += [{"role": role, "content": content} for role, content in history if content]
    return messages + _post_history(companion, user_name=user_name)


def strip_speaker_label(text: str, name: str) -> str:
    """Drop a leading "Name:" the model may copy from the labelled history."""
    label = rf"^\s*\**{re.escape(name)}\**\s*:\s*(?:\*\*\s*)?"
    return re.sub(label, "", text, count=1, flags=re.IGNORECASE)


def trim_history(history: list[tuple[str, str]], *, max_chars: int) -> list[tuple[str, str]]:
    """Keep the newest messages whose text fits ``max_chars`` (the last one always stays)."""
    kept: list[tuple[str, str]] = []
    total = 0
    for role, content in reversed(history):
        total += len(content)
        if kept and total > max_chars:
            break
        kept.append((role, content[-max_chars:]))
    return list(reversed(kept))


def build_analysis_messages(companion: Companion, *, text: str, speaker: str) -> list[dict[str, str]]:
    """Ask what ``text`` implies for the companion's outfit, location and action."""
    system = (
        "You track the scene of a role-play chat. Given the current state and a new message, "
        "say what the companion is wearing, where they are and what they are doing AFTER the message. "
        "Keep each value a short phrase (under 12 words). Keep a value unchanged when the message does "
        "not change it. wants_image is true only if the user asks to see a picture/photo/selfie. "
        "Whatever language the chat is in, write the JSON keys exactly as shown, in English. "
        f'{ANALYSIS_MARKER}: {{"outfit": "...", "location": "...", "action": "...", "wants_image": false}}'
    )
    user = (
        f"Companion: {companion.name}\n"
        f"Current outfit: {companion.current_outfit}\n"
        f"Current location: {companion.current_location}\n"
        f"Current action: {companion.current_action}\n"
        f"New message from {speaker}: {text[:2000]}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def extract_state(raw: str, *, current: SceneState) -> SceneState:
    """Pull the state out of chatty model output; fall back to ``current`` field by field.

    Models wrap JSON in prose or code fences, use single quotes, or add
    trailing commas (``chat.jsonout`` reads through that); whatever cannot be
    read keeps its current value.
    """
    data: dict[str, Any] = first_json_object(raw) or {}

    def field(name: str, fallback: str) -> str:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:200]
        return fallback

    wants = data.get("wants_image")
    return SceneState(
        outfit=field("outfit", current.outfit),
        location=field("location", current.location),
        action=field("action", current.action),
        wants_image=wants is True or (isinstance(wants, str) and wants.lower() == "true"),
    )


# --- images -------------------------------------------------------------------

OUTERWEAR = (
    "dress", "gown", "shirt", "t-shirt", "blouse", "sweater", "hoodie", "jacket", "coat", "jeans",
    "trousers", "pants", "skirt", "shorts", "suit", "uniform", "top", "cardigan", "jumpsuit", "robe",
    "kimono", "overalls", "tank top", "leggings",
)  # fmt: skip
UNDERWEAR = (
    "underwear", "bra", "panties", "lingerie", "boxers", "briefs", "thong", "undershirt", "knickers",
    "garter", "stockings",
)  # fmt: skip


def filter_outfit(outfit: str) -> str:
    """Drop underwear items when outerwear is worn: a painter sees only what shows."""
    pieces = [p.strip() for p in re.split(r",|\band\b|\bwith\b", outfit) if p.strip()]
    lowered = outfit.lower()
    if not any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in OUTERWEAR):
        return outfit.strip()
    visible = [p for p in pieces if not any(re.search(rf"\b{re.escape(u)}\b", p.lower()) for u in UNDERWEAR)]
    return ", ".join(visible)


USER_SCENE_WORDS = ("you", "us", "we", "together", "together with", "hug", "kiss", "holding hands", "with me")

NEGATIVE_PROMPT = (
    "lowres, bad anatomy, bad hands, extra fingers, missing fingers, deformed, blurry, watermark, text, "
    "signature, jpeg artifacts, cropped, worst quality, low quality, child, minor"
)


def build_image_prompt(
    companion: Companion, *, user_appearance: str = "", scene_text: str = ""
) -> tuple[str, str]:
    """(prompt, negative prompt) for a picture of the companion in their current state."""
    style = catalogue.prompt_phrase("style", companion.style)
    parts = [
        style,
        f"portrait of {companion.name}, {describe_appearance(companion)}",
        filter_outfit(companion.current_outfit),
        companion.current_location,
        companion.current_action,
        companion.visual_prompt,
    ]
    lowered = f" {scene_text.lower()} {companion.current_action.lower()} "
    if user_appearance and any(f" {w} " in lowered for w in USER_SCENE_WORDS):
        parts.append(f"together with a companion: {user_appearance}")
    parts.append("high quality, detailed")
    prompt = ", ".join(p.strip() for p in parts if p and p.strip())
    return prompt, NEGATIVE_PROMPT
