"""A companion's wizard answers as the prose other apps read: description, personality, scenario.

SillyTavern, RisuAI and Agnai know nothing of ``extensions.companionhub``;
they send the card's ``description``, ``personality`` and ``scenario`` to the
model. A companion made in the wizard has its look and identity only as
catalogue answers, so the export writes them out in sentences, from the
catalogue's words. Answers that are still an import's stand-ins are left
out: the card never said them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.utils import translation

from companions import catalogue
from companions.models import Companion
from companions.scene import scene_grammar, scene_phrase


@dataclass(frozen=True)
class Pronouns:
    subject: str  # She
    possessive: str  # her
    be: str  # is
    have: str  # has
    verb_s: str  # "s" for loves/works, "" for they love


PRONOUNS = {
    "female": Pronouns("She", "her", "is", "has", "s"),
    "male": Pronouns("He", "his", "is", "has", "s"),
}
THEY = Pronouns("They", "their", "are", "have", "")
PERSON_NOUN = {"female": "woman", "male": "man"}


def _label(field: str, value: str) -> str:
    """The English label: other apps and their models read the card, whatever language our page is in."""
    return catalogue.english_label(field, value)


def _phrase(field: str, value: str) -> str:
    return catalogue.prompt_phrase(field, value)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def join_words(words: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def _hair(color: str, style: str) -> str:
    colour = _label("hair_color", color).lower() if color else ""
    phrase = _phrase("hair_style", style)
    if not colour:
        return phrase
    if not phrase:
        return f"{colour} hair"
    if phrase.endswith(" hair"):
        return f"{phrase[: -len(' hair')]} {colour} hair"
    if phrase.startswith("hair "):
        return f"{colour} {phrase}"
    return f"{colour} hair in {_article(phrase)} {phrase}"


def _heritage(companion: Companion) -> str:
    if companion.ethnicity == "mixed":
        return "of mixed heritage"
    if companion.ethnicity == "latino":
        return "Latina" if companion.gender == "female" else "Latino"
    label = _label("ethnicity", companion.ethnicity)
    return f"of {label} descent" if label else ""


def look_prose(companion: Companion, stand_ins: set[str]) -> str:
    """'Mika is a 25-year-old woman of East Asian descent with long wavy pink hair ...'"""

    def known(name: str) -> bool:
        return name not in stand_ins and bool(getattr(companion, name, None))

    they = PRONOUNS.get(companion.gender, THEY)
    sentences = []
    noun = PERSON_NOUN.get(companion.gender, "non-binary person")
    who = f"{companion.age}-year-old {noun}" if known("age") else noun
    heritage = _heritage(companion) if known("ethnicity") else ""
    if heritage == "Latina" or heritage == "Latino":
        who = f"{who[: -len(noun)]}{heritage} {noun}" if known("age") else f"{heritage} {noun}"
        heritage = ""
    features = []
    hair = _hair(
        companion.hair_color if known("hair_color") else "",
        companion.hair_style if known("hair_style") else "",
    )
    if hair:
        features.append(hair)
    if known("eye_color"):
        features.append(f"{_label('eye_color', companion.eye_color).lower()} eyes")
    if known("skin_tone"):
        features.append(_phrase("skin_tone", companion.skin_tone))
    if heritage or features or known("age"):
        first = f"{companion.name} is {_article(who)} {who}"
        if heritage:
            first += f" {heritage}"
        if features:
            first += f" with {join_words(features)}"
        sentences.append(first + ".")
    body = []
    if known("height"):
        body.append(
            "of average height" if companion.height == "average" else _phrase("height", companion.height)
        )
    if known("body_type"):
        build = _phrase("body_type", companion.body_type)
        body.append(f"with {_article(build)} {build}" if body else f"{_article(build)} {build}")
    if body:
        if len(body) == 2:
            sentences.append(f"{they.subject} {they.be} {body[0]}, {body[1]}.")
        elif body[0].startswith(("a ", "an ")):
            sentences.append(f"{they.subject} {they.have} {body[0]}.")
        else:
            sentences.append(f"{they.subject} {they.be} {body[0]}.")
    if companion.distinguishing_features.strip():
        sentences.append(f"Distinguishing features: {companion.distinguishing_features.strip().rstrip('.')}.")
    return " ".join(sentences)


def description_prose(companion: Companion, stand_ins: set[str]) -> str:
    """The look, then the backstory (as written), as one description."""
    look = look_prose(companion, stand_ins)
    return "\n\n".join(part for part in (look, companion.backstory.strip()) if part)


def personality_prose(companion: Companion, stand_ins: set[str]) -> str:
    """'Mika is playful and caring. She loves video games and music. She is an artist.'"""
    they = PRONOUNS.get(companion.gender, THEY)
    sentences = []
    traits = companion.personality_traits if "personality_traits" not in stand_ins else []
    words = [_phrase("personality_traits", t) for t in traits if isinstance(t, str)]
    if words := [w for w in words if w]:
        sentences.append(f"{companion.name} is {join_words(words)}.")
    hobbies = companion.hobbies if "hobbies" not in stand_ins else []
    liked = [_phrase("hobbies", h) for h in hobbies if isinstance(h, str)]
    if liked := [w for w in liked if w]:
        sentences.append(f"{they.subject} love{they.verb_s} {join_words(liked)}.")
    if "occupation" not in stand_ins and (job := _phrase("occupation", companion.occupation)):
        sentences.append(f"{they.subject} {they.be} {_article(job)} {job}.")
    return " ".join(sentences)


def scenario_prose(companion: Companion, stand_ins: set[str]) -> str:
    """'Mika is {{user}}'s friend. Right now she is at home in the living room, wearing ..., relaxing ...'

    ``{{user}}`` is left for the other app to fill in, as card authors write it.
    """
    if "relationship" in stand_ins:
        return ""
    role = _phrase("relationship", companion.relationship)
    if not role:
        return ""
    with translation.override("en"):  # the card's prose is English
        state = scene_phrase(
            outfit=companion.current_outfit,
            location=companion.current_location,
            action=companion.current_action,
            grammar=scene_grammar(),
        )
    first = f"{companion.name} is {{{{user}}}}'s {role}."
    if not state:
        return first
    they = PRONOUNS.get(companion.gender, THEY)
    return f"{first} Right now {they.subject.lower()} {they.be} {state}."


def composed_digest(text: str) -> str:
    """A short fingerprint of composed prose, kept in the export's hub extension.

    On import, a field whose text still has this fingerprint is our own prose
    (the exact columns come from the extension); one edited in another app is
    taken as the new text.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
