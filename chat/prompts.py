"""Prompts: what the LLM and the image model are asked, built from the companion.

Plain functions of plain values, so each rule (outfit filtering, the system
prompt's parts, JSON extraction) is tested without a back end. What goes into
a reply's prompt within the token budget is ``chat.prompt_assembly``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.utils.translation import get_language_info

from accounts.language import user_language
from chat.jsonout import first_json_object
from companions import catalogue
from companions.cards import card_prompt_defaults, fill_macros, stored_card
from companions.models import Companion
from companions.scene import prompt_scene_line
from lorebooks.scanning import AFTER_CHAR, BEFORE_CHAR

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
        catalogue.prompt_phrase("chest", companion.chest)
        if catalogue.asks("chest", companion.gender)
        else "",
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


class LoreText(Protocol):
    """A lorebook entry as the prompt places it (``lorebooks.scanning.Fired`` is one)."""

    @property
    def text(self) -> str: ...

    @property
    def position(self) -> str: ...


WORLD_INFO_OPEN = "[World info: background facts, use them when relevant]"
WORLD_INFO_CLOSE = "[End of world info]"


def lore_block(texts: Sequence[str]) -> str:
    """Lore text fenced off so the model reads it as background, not as chat."""
    texts = [text for text in texts if text]
    if not texts:
        return ""
    body = "\n\n".join(texts)
    return f"{WORLD_INFO_OPEN}\n{body}\n{WORLD_INFO_CLOSE}"


def _lore_block(lore: Sequence[LoreText], position: str) -> str:
    return lore_block([entry.text for entry in lore if entry.position == position])


def memories_block(texts: Sequence[str], *, user_name: str) -> str:
    """What the companion remembers, as a list in the system prompt."""
    if not texts:
        return ""
    lines = "\n".join(f"- {text}" for text in texts)
    return f"Things you remember about {user_name}:\n{lines}"


def summary_message(summary: str) -> dict[str, str]:
    """The rolling summary, as the system message before the recent messages."""
    return {"role": "system", "content": f"Summary of the conversation so far:\n{summary.strip()}"}


def reply_language_code(companion: Companion) -> str:
    """The language the companion replies in: its own ``reply_language`` if set, else its
    owner's language, else the site's (``accounts.language.user_language``)."""
    return companion.reply_language or user_language(companion.owner)


def reply_language_name(companion: Companion) -> str:
    """The English name of the language the companion replies in (prompts stay English)."""
    return str(get_language_info(reply_language_code(companion))["name"])


@dataclass(frozen=True)
class SystemParts:
    """The system prompt in the budget's parts (``chat.budget``), each a list of lines.

    ``head`` and ``tail`` are the core (who, where, how to reply, the language, the card's
    system prompt); ``character`` is the card's text; ``examples`` the example dialogue.
    ``render`` puts them together with what the turn adds (lore, memories).
    """

    head: tuple[str, ...]
    character: tuple[str, ...]
    tail: tuple[str, ...]
    examples: str
    system_prompt: str
    group_note: str = ""

    def render(
        self,
        *,
        lore: Sequence[LoreText] = (),
        memories: str = "",
        with_examples: bool = True,
        examples: str | None = None,
    ) -> str:
        shown = self.examples if examples is None else examples
        lines = [
            *self.head,
            _lore_block(lore, BEFORE_CHAR),
            *self.character,
            _lore_block(lore, AFTER_CHAR),
            memories,
            *self.tail,
            examples_line(shown) if with_examples and shown else "",
            self.system_prompt,
            self.group_note,
        ]
        return "\n".join(line for line in lines if line)


def examples_line(examples: str) -> str:
    return f"Examples of how you talk (style only, not part of this conversation):\n{examples}"


def system_parts(companion: Companion, *, user_name: str, others: Sequence[str] | None = None) -> SystemParts:
    """Who the companion is, where they are, and how to reply, in the budget's parts.

    Imported character cards add their personality, scenario and example
    dialogue; catalogue answers the import only filled in as stand-ins are
    left out (the card's own text describes the character), and the card
    placeholders ``{{char}}``/``{{user}}`` get the real names. ``others``: the
    other companions of a group chat (a note says how a group's lines read).
    """
    stand_ins = card_prompt_defaults(companion)

    def fill(text: str) -> str:
        return fill_macros(text, char=companion.name, user=user_name).strip()

    traits = ", ".join(catalogue.prompt_phrase("personality_traits", t) for t in companion.personality_traits)
    hobbies = ", ".join(catalogue.prompt_phrase("hobbies", h) for h in companion.hobbies)
    personality = fill(card_text(companion, "personality"))
    scenario = fill(card_text(companion, "scenario"))
    backstory = fill(companion.backstory)
    head = (
        f"You are {companion.name}, chatting with {user_name}. Stay in character; never say you are an AI.",
        ""
        if "relationship" in stand_ins
        else f"You are {user_name}'s {catalogue.prompt_phrase('relationship', companion.relationship)}.",
    )
    character = (
        f"Personality: {traits}." if traits and "personality_traits" not in stand_ins else "",
        f"Personality: {personality}" if personality else "",
        ""
        if "occupation" in stand_ins
        else f"Occupation: {catalogue.prompt_phrase('occupation', companion.occupation)}.",
        f"Hobbies: {hobbies}." if hobbies else "",
        "" if stand_ins >= LOOK_FIELDS else f"Appearance: {describe_appearance(companion)}.",
        f"Backstory: {backstory}" if backstory else "",
        f"Scenario: {scenario}" if scenario else "",
    )
    tail = (
        prompt_scene_line(
            outfit=companion.current_outfit,
            location=companion.current_location,
            action=companion.current_action,
            language=reply_language_code(companion),
        ),
        "Reply in a natural, warm way in a few sentences. Describe actions in *asterisks*.",
        f"Always reply in {reply_language_name(companion)}.",
    )
    group_note = ""
    if others is not None:
        names = ", ".join(others)
        group_note = (
            f"This is a group conversation between {user_name} and several companions: you"
            f" ({companion.name}) and {names}. Each line of the conversation starts with its speaker's"
            f" name. Reply only as {companion.name}, with your own words, without a name label; never"
            f" write lines for {user_name} or {names}."
        )
    return SystemParts(
        head=tuple(line for line in head if line),
        character=tuple(line for line in character if line),
        tail=tuple(line for line in tail if line),
        examples=fill(_example_dialogue(card_text(companion, "mes_example"))),
        system_prompt=fill(companion.system_prompt),
        group_note=group_note,
    )


def build_system_prompt(companion: Companion, *, user_name: str, lore: Sequence[LoreText] = ()) -> str:
    """The whole system prompt, nothing left out (the budget may leave parts out: see
    ``chat.prompt_assembly``). ``lore`` goes before or after the character's description,
    as each entry asks."""
    return system_parts(companion, user_name=user_name).render(lore=lore)


def post_history(companion: Companion, *, user_name: str) -> list[dict[str, str]]:
    """A card's post-history instructions, as the last system message: the model reads them
    right before it answers (where character cards and SillyTavern put them)."""
    after = fill_macros(
        card_text(companion, "post_history_instructions"), char=companion.name, user=user_name
    )
    return [{"role": "system", "content": after.strip()}] if after.strip() else []


def build_chat_messages(
    companion: Companion, *, user_name: str, history: list[tuple[str, str]]
) -> list[dict[str, str]]:
    """System prompt plus the given conversation (oldest first), with no budget, lore or
    memories: the reply step uses ``chat.prompt_assembly``; this is its simplest case."""
    messages = [{"role": "system", "content": build_system_prompt(companion, user_name=user_name)}]
    messages += [{"role": role, "content": content} for role, content in history if content]
    return messages + post_history(companion, user_name=user_name)


def build_group_chat_messages(
    companion: Companion, *, user_name: str, others: list[str], history: list[tuple[str, str]]
) -> list[dict[str, str]]:
    """The same for a group: told it is a group, each line of ``history`` labelled "Name: text"
    (the companion's own lines are the assistant's, everyone else's the user's)."""
    system = system_parts(companion, user_name=user_name, others=others).render()
    messages = [{"role": "system", "content": system}]
    messages += [{"role": role, "content": content} for role, content in history if content]
    return messages + post_history(companion, user_name=user_name)


def label_line(name: str, content: str) -> str:
    """A group's line as the model reads it."""
    return f"{name}: {content}"


def strip_speaker_label(text: str, name: str) -> str:
    """Drop a leading "Name:" the model may copy from the labelled history."""
    label = rf"^\s*\**{re.escape(name)}\**\s*:\s*(?:\*\*\s*)?"
    return re.sub(label, "", text, count=1, flags=re.IGNORECASE)


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
