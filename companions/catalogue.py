"""The appearance and personality catalogue: every option a companion can have.

One place for the wizard (what to show), validation (what to accept) and the
prompt builders (what words to send to the LLM and the image model). A value
is stored in the database and never translated; its label is shown to people
in their language; its ``prompt`` is the English phrase used in prompts.

Labels are lazy translations, resolved when a page shows them (``choices``,
``label``), each with its field as context: the same English word ("Black",
"Medium") is a different word, or takes a different ending, in another
language depending on what it describes. The card export's prose must read
the same whatever language the page is in, so it uses ``english_label``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_noop, pgettext_lazy


@dataclass(frozen=True)
class Option:
    value: str  # stored in the database: language-independent
    label: Promise  # shown to people: translated lazily, in the language active when shown
    prompt: str  # the English words prompts use

    @property
    def english(self) -> str:
        """The label in English, whatever language is active (text that must stay English)."""
        with translation.override("en"):
            return str(self.label)


def _options(*rows: tuple[str, Promise, str]) -> tuple[Option, ...]:
    return tuple(Option(*row) for row in rows)


STYLES = _options(
    (
        "realistic",
        pgettext_lazy("art style", "Realistic"),
        "photorealistic photo, natural lighting, detailed skin",
    ),
    (
        "anime",
        pgettext_lazy("art style", "Anime"),
        "anime style illustration, clean line art, vibrant colours",
    ),
    (
        "semi_realistic",
        pgettext_lazy("art style", "Semi-realistic"),
        "semi-realistic digital painting, soft shading",
    ),
    ("3d", pgettext_lazy("art style", "3D render"), "3d render, cinematic lighting, subsurface scattering"),
)

GENDERS = _options(
    ("female", pgettext_lazy("gender", "Woman"), "woman"),
    ("male", pgettext_lazy("gender", "Man"), "man"),
    ("non_binary", pgettext_lazy("gender", "Non-binary"), "androgynous person"),
)

ETHNICITIES = _options(
    ("caucasian", pgettext_lazy("ethnicity", "Caucasian"), "caucasian"),
    ("east_asian", pgettext_lazy("ethnicity", "East Asian"), "east asian"),
    ("south_asian", pgettext_lazy("ethnicity", "South Asian"), "south asian"),
    ("southeast_asian", pgettext_lazy("ethnicity", "Southeast Asian"), "southeast asian"),
    ("black", pgettext_lazy("ethnicity", "Black"), "black"),
    ("latino", pgettext_lazy("ethnicity", "Latina / Latino"), "latino"),
    ("middle_eastern", pgettext_lazy("ethnicity", "Middle Eastern"), "middle eastern"),
    ("mixed", pgettext_lazy("ethnicity", "Mixed"), "mixed heritage"),
)

HAIR_COLORS = _options(
    ("black", pgettext_lazy("hair colour", "Black"), "black hair"),
    ("brown", pgettext_lazy("hair colour", "Brown"), "brown hair"),
    ("blonde", pgettext_lazy("hair colour", "Blonde"), "blonde hair"),
    ("red", pgettext_lazy("hair colour", "Red"), "red hair"),
    ("auburn", pgettext_lazy("hair colour", "Auburn"), "auburn hair"),
    ("grey", pgettext_lazy("hair colour", "Grey"), "grey hair"),
    ("white", pgettext_lazy("hair colour", "White"), "white hair"),
    ("pink", pgettext_lazy("hair colour", "Pink"), "pink hair"),
    ("blue", pgettext_lazy("hair colour", "Blue"), "blue hair"),
    ("purple", pgettext_lazy("hair colour", "Purple"), "purple hair"),
)

HAIR_STYLES = _options(
    ("long_straight", pgettext_lazy("hair style", "Long & straight"), "long straight hair"),
    ("long_wavy", pgettext_lazy("hair style", "Long & wavy"), "long wavy hair"),
    ("curly", pgettext_lazy("hair style", "Curly"), "curly hair"),
    ("short", pgettext_lazy("hair style", "Short"), "short hair"),
    ("bob", pgettext_lazy("hair style", "Bob"), "bob haircut"),
    ("ponytail", pgettext_lazy("hair style", "Ponytail"), "ponytail"),
    ("braids", pgettext_lazy("hair style", "Braids"), "braided hair"),
    ("bun", pgettext_lazy("hair style", "Bun"), "hair in a bun"),
    ("pixie", pgettext_lazy("hair style", "Pixie cut"), "pixie cut"),
    ("buzz", pgettext_lazy("hair style", "Buzz cut"), "buzz cut"),
)

EYE_COLORS = _options(
    ("brown", pgettext_lazy("eye colour", "Brown"), "brown eyes"),
    ("blue", pgettext_lazy("eye colour", "Blue"), "blue eyes"),
    ("green", pgettext_lazy("eye colour", "Green"), "green eyes"),
    ("hazel", pgettext_lazy("eye colour", "Hazel"), "hazel eyes"),
    ("grey", pgettext_lazy("eye colour", "Grey"), "grey eyes"),
    ("amber", pgettext_lazy("eye colour", "Amber"), "amber eyes"),
)

SKIN_TONES = _options(
    ("fair", pgettext_lazy("skin tone", "Fair"), "fair skin"),
    ("light", pgettext_lazy("skin tone", "Light"), "light skin"),
    ("medium", pgettext_lazy("skin tone", "Medium"), "medium skin tone"),
    ("olive", pgettext_lazy("skin tone", "Olive"), "olive skin"),
    ("tan", pgettext_lazy("skin tone", "Tan"), "tanned skin"),
    ("dark", pgettext_lazy("skin tone", "Dark"), "dark skin"),
)

BODY_TYPES = _options(
    ("slim", pgettext_lazy("body type", "Slim"), "slim build"),
    ("athletic", pgettext_lazy("body type", "Athletic"), "athletic build"),
    ("average", pgettext_lazy("body type", "Average"), "average build"),
    ("curvy", pgettext_lazy("body type", "Curvy"), "curvy figure"),
    ("muscular", pgettext_lazy("body type", "Muscular"), "muscular build"),
    ("plus", pgettext_lazy("body type", "Plus size"), "plus-size figure"),
)

HEIGHTS = _options(
    ("petite", pgettext_lazy("height", "Petite"), "petite"),
    ("average", pgettext_lazy("height", "Average height"), "average height"),
    ("tall", pgettext_lazy("height", "Tall"), "tall"),
)

CHEST_SIZES = _options(
    ("flat", pgettext_lazy("chest", "Flat"), "flat chest"),
    ("small", pgettext_lazy("chest", "Small"), "small chest"),
    ("medium", pgettext_lazy("chest", "Medium"), "medium chest"),
    ("large", pgettext_lazy("chest", "Large"), "large chest"),
    ("broad", pgettext_lazy("chest", "Broad"), "broad chest"),
)

PERSONALITY_TRAITS = _options(
    ("caring", pgettext_lazy("personality trait", "Caring"), "caring"),
    ("playful", pgettext_lazy("personality trait", "Playful"), "playful"),
    ("shy", pgettext_lazy("personality trait", "Shy"), "shy"),
    ("confident", pgettext_lazy("personality trait", "Confident"), "confident"),
    ("sarcastic", pgettext_lazy("personality trait", "Sarcastic"), "sarcastic"),
    ("romantic", pgettext_lazy("personality trait", "Romantic"), "romantic"),
    ("adventurous", pgettext_lazy("personality trait", "Adventurous"), "adventurous"),
    ("intellectual", pgettext_lazy("personality trait", "Intellectual"), "intellectual"),
    ("mysterious", pgettext_lazy("personality trait", "Mysterious"), "mysterious"),
    ("cheerful", pgettext_lazy("personality trait", "Cheerful"), "cheerful"),
    ("calm", pgettext_lazy("personality trait", "Calm"), "calm"),
    ("flirty", pgettext_lazy("personality trait", "Flirty"), "flirty"),
    ("loyal", pgettext_lazy("personality trait", "Loyal"), "loyal"),
    ("witty", pgettext_lazy("personality trait", "Witty"), "witty"),
    ("protective", pgettext_lazy("personality trait", "Protective"), "protective"),
    ("curious", pgettext_lazy("personality trait", "Curious"), "curious"),
)

HOBBIES = _options(
    ("reading", pgettext_lazy("hobby", "Reading"), "reading"),
    ("gaming", pgettext_lazy("hobby", "Gaming"), "video games"),
    ("cooking", pgettext_lazy("hobby", "Cooking"), "cooking"),
    ("hiking", pgettext_lazy("hobby", "Hiking"), "hiking"),
    ("music", pgettext_lazy("hobby", "Music"), "music"),
    ("art", pgettext_lazy("hobby", "Art"), "drawing and painting"),
    ("fitness", pgettext_lazy("hobby", "Fitness"), "working out"),
    ("travel", pgettext_lazy("hobby", "Travel"), "travelling"),
    ("photography", pgettext_lazy("hobby", "Photography"), "photography"),
    ("dancing", pgettext_lazy("hobby", "Dancing"), "dancing"),
    ("movies", pgettext_lazy("hobby", "Movies"), "movies"),
    ("gardening", pgettext_lazy("hobby", "Gardening"), "gardening"),
    ("yoga", pgettext_lazy("hobby", "Yoga"), "yoga"),
    ("writing", pgettext_lazy("hobby", "Writing"), "writing"),
)

OCCUPATIONS = _options(
    ("student", pgettext_lazy("occupation", "Student"), "university student"),
    ("artist", pgettext_lazy("occupation", "Artist"), "artist"),
    ("nurse", pgettext_lazy("occupation", "Nurse"), "nurse"),
    ("teacher", pgettext_lazy("occupation", "Teacher"), "teacher"),
    ("engineer", pgettext_lazy("occupation", "Engineer"), "software engineer"),
    ("musician", pgettext_lazy("occupation", "Musician"), "musician"),
    ("chef", pgettext_lazy("occupation", "Chef"), "chef"),
    ("athlete", pgettext_lazy("occupation", "Athlete"), "professional athlete"),
    ("writer", pgettext_lazy("occupation", "Writer"), "writer"),
    ("barista", pgettext_lazy("occupation", "Barista"), "barista"),
    ("scientist", pgettext_lazy("occupation", "Scientist"), "scientist"),
    ("doctor", pgettext_lazy("occupation", "Doctor"), "doctor"),
    ("entrepreneur", pgettext_lazy("occupation", "Entrepreneur"), "entrepreneur"),
    ("librarian", pgettext_lazy("occupation", "Librarian"), "librarian"),
)

RELATIONSHIPS = _options(
    ("partner", pgettext_lazy("relationship", "Partner"), "romantic partner"),
    ("friend", pgettext_lazy("relationship", "Friend"), "friend"),
    ("best_friend", pgettext_lazy("relationship", "Best friend"), "best friend"),
    ("crush", pgettext_lazy("relationship", "Crush"), "crush"),
    ("spouse", pgettext_lazy("relationship", "Spouse"), "spouse"),
    ("roommate", pgettext_lazy("relationship", "Roommate"), "roommate"),
    ("coworker", pgettext_lazy("relationship", "Coworker"), "coworker"),
    ("mentor", pgettext_lazy("relationship", "Mentor"), "mentor"),
)

# field name -> options, for single-choice fields
SINGLE_CHOICE: dict[str, tuple[Option, ...]] = {
    "style": STYLES,
    "gender": GENDERS,
    "ethnicity": ETHNICITIES,
    "hair_color": HAIR_COLORS,
    "hair_style": HAIR_STYLES,
    "eye_color": EYE_COLORS,
    "skin_tone": SKIN_TONES,
    "body_type": BODY_TYPES,
    "height": HEIGHTS,
    "chest": CHEST_SIZES,
    "occupation": OCCUPATIONS,
    "relationship": RELATIONSHIPS,
}
# field name -> options, for several-choice fields, with (min, max) picks
MULTI_CHOICE: dict[str, tuple[tuple[Option, ...], int, int]] = {
    "personality_traits": (PERSONALITY_TRAITS, 1, 5),
    "hobbies": (HOBBIES, 0, 5),
}

MIN_AGE, MAX_AGE = 18, 99

# Body questions that make no sense for some genders (a man's "chest / breasts" size): not asked,
# shown or put in prompts for those genders, whatever value was stored before or posted anyway.
NOT_ASKED_FOR: dict[str, frozenset[str]] = {"chest": frozenset({"male"})}


def asks(field: str, gender: str) -> bool:
    """Whether ``field`` is a question for a companion of ``gender``."""
    return gender not in NOT_ASKED_FOR.get(field, frozenset())


DEFAULT_STATE = {
    "current_outfit": gettext_noop("wearing a casual sweater and jeans"),
    "current_location": gettext_noop("at home in the living room"),
    "current_action": gettext_noop("relaxing on the sofa"),
}


def starting_scene(language: str) -> dict[str, str]:
    """Where a new or wiped companion starts, written in ``language`` (its owner's).

    The scene is text like any the chat writes later (the analysis rewrites it
    in the reply's language), so it starts in the language the owner reads;
    the English ``DEFAULT_STATE`` stays the column default.
    """
    with translation.override(language):
        return {field: gettext(text) for field, text in DEFAULT_STATE.items()}


def choices(field: str) -> list[tuple[str, Promise]]:
    """Django ``choices`` for a catalogue field: stored values, labels translated when shown."""
    return [(o.value, o.label) for o in options_of(field)]


def options_of(field: str) -> tuple[Option, ...]:
    return SINGLE_CHOICE.get(field) or MULTI_CHOICE[field][0]


def option(field: str, value: str) -> Option | None:
    return next((o for o in options_of(field) if o.value == value), None)


def prompt_phrase(field: str, value: str) -> str:
    """The words prompts use for a stored value ('' when unknown or empty)."""
    found = option(field, value) if value else None
    return found.prompt if found else ""


def label(field: str, value: str) -> str:
    """The label of a stored value in the active language (the value itself when unknown)."""
    found = option(field, value) if value else None
    return str(found.label) if found else value


def english_label(field: str, value: str) -> str:
    """The English label of a stored value, whatever language is active (the value when unknown)."""
    found = option(field, value) if value else None
    return found.english if found else value


def option_count() -> int:
    return sum(len(o) for o in SINGLE_CHOICE.values()) + sum(len(o) for o, _, _ in MULTI_CHOICE.values())
