"""The companion's scene (where, wearing what, doing what) as one sentence.

The three values are free text written by people and by the scene analysis:
"in the park", "the park", "sportswear", "wearing a red dress". A value that
already starts with a preposition (a place) or a word such as "wearing" (an
outfit) is kept as written; a bare one gets the word it lacks. The words and
the sentence are translated, so the panel reads in the owner's language; the
chat page's script builds the same sentence from ``scene_grammar`` when the
scene changes (``static/js/chat/render.js``, ``sceneSentence``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict

from django.utils import translation
from django.utils.translation import gettext, pgettext

if TYPE_CHECKING:
    from companions.models import Companion


class SceneGrammar(TypedDict):
    """What builds the sentence in one language (also sent to the page as JSON)."""

    place_words: list[str]
    outfit_words: list[str]
    place: str
    outfit: str
    joiner: str
    sentence: str


def scene_grammar() -> SceneGrammar:
    """The sentence's words in the active language."""
    return {
        # Translators: words that start a place phrase, lower case, separated by spaces. A place
        # starting with one of them is kept as written; any other gets the "at %(place)s" form.
        "place_words": pgettext("scene", "at in on by near inside outside under behind beside home").split(),
        # Translators: words that start an outfit phrase, lower case, separated by spaces.
        "outfit_words": pgettext("scene", "wearing dressed in naked nude").split(),
        # Translators: a place without a preposition of its own, e.g. "at the park".
        "place": pgettext("scene", "at %(place)s"),
        # Translators: an outfit without a verb of its own, e.g. "wearing sportswear".
        "outfit": pgettext("scene", "wearing %(outfit)s"),
        "joiner": pgettext("scene", ", "),
        # Translators: e.g. "Mika is at the park, wearing sportswear, working out."
        "sentence": gettext("%(name)s is %(scene)s."),
    }


def _clean(value: str) -> str:
    return " ".join(value.split()).rstrip(".,;: ")


def _starts_with(value: str, words: set[str]) -> bool:
    first = value.split(" ", 1)[0].lower()
    return first in words


def scene_phrase(
    *, outfit: str, location: str, action: str, grammar: SceneGrammar, also_known: SceneGrammar | None = None
) -> str:
    """ "at the park, wearing sportswear, working out" (empty parts left out; '' when all are).

    ``also_known``: a second language whose place and outfit words are recognised too (the
    prompt is English, the values may be in the companion's language).
    """
    place_words = set(grammar["place_words"]) | set(also_known["place_words"] if also_known else ())
    outfit_words = set(grammar["outfit_words"]) | set(also_known["outfit_words"] if also_known else ())
    parts = []
    if place := _clean(location):
        parts.append(place if _starts_with(place, place_words) else grammar["place"] % {"place": place})
    if worn := _clean(outfit):
        parts.append(worn if _starts_with(worn, outfit_words) else grammar["outfit"] % {"outfit": worn})
    if doing := _clean(action):
        parts.append(doing)
    return grammar["joiner"].join(parts)


def scene_sentence(*, name: str, outfit: str, location: str, action: str) -> str:
    """ "Mika is at the park, wearing sportswear, working out." in the active language ('' when
    the scene is empty)."""
    grammar = scene_grammar()
    phrase = scene_phrase(outfit=outfit, location=location, action=action, grammar=grammar)
    return grammar["sentence"] % {"name": name, "scene": phrase} if phrase else ""


def prompt_scene_line(*, outfit: str, location: str, action: str, language: str) -> str:
    """The prompt's scene line, in English (prompts are English): "You are at the park, wearing
    sportswear, working out." ``language``: the values' language, whose words are recognised."""
    with translation.override(language):
        known = scene_grammar()
    with translation.override("en"):
        phrase = scene_phrase(
            outfit=outfit, location=location, action=action, grammar=scene_grammar(), also_known=known
        )
    return f"You are {phrase}." if phrase else ""


class SceneValues(TypedDict):
    outfit: str
    location: str
    action: str


# How an imported card's own scene is read (its scenario and first message, by the companion's
# LLM): chat registers it (chat/apps.py), as companions imports no chat. None: keep the default.
type CardSceneReader = Callable[[Companion], SceneValues | None]
_card_scene_reader: CardSceneReader | None = None


def register_card_scene_reader(function: CardSceneReader) -> None:
    global _card_scene_reader
    _card_scene_reader = function


def card_starting_scene(companion: Companion) -> SceneValues | None:
    """The imported card's starting scene, or None (no reader, or it found none)."""
    return _card_scene_reader(companion) if _card_scene_reader is not None else None
