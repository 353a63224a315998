"""The appearance and personality catalogue: every option a companion can have.

One place for the wizard (what to show), validation (what to accept) and the
prompt builders (what words to send to the LLM and the image model). A value
is stored in the database; its label is shown to people; its ``prompt`` is
the phrase used in prompts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    prompt: str


def _options(*rows: tuple[str, str, str]) -> tuple[Option, ...]:
    return tuple(Option(*row) for row in rows)


STYLES = _options(
    ("realistic", "Realistic", "photorealistic photo, natural lighting, detailed skin"),
    ("anime", "Anime", "anime style illustration, clean line art, vibrant colours"),
    ("semi_realistic", "Semi-realistic", "semi-realistic digital painting, soft shading"),
    ("3d", "3D render", "3d render, cinematic lighting, subsurface scattering"),
)

GENDERS = _options(
    ("female", "Woman", "woman"),
    ("male", "Man", "man"),
    ("non_binary", "Non-binary", "androgynous person"),
)

ETHNICITIES = _options(
    ("caucasian", "Caucasian", "caucasian"),
    ("east_asian", "East Asian", "east asian"),
    ("south_asian", "South Asian", "south asian"),
    ("southeast_asian", "Southeast Asian", "southeast asian"),
    ("black", "Black", "black"),
    ("latino", "Latina / Latino", "latino"),
    ("middle_eastern", "Middle Eastern", "middle eastern"),
    ("mixed", "Mixed", "mixed heritage"),
)

HAIR_COLORS = _options(
    ("black", "Black", "black hair"),
    ("brown", "Brown", "brown hair"),
    ("blonde", "Blonde", "blonde hair"),
    ("red", "Red", "red hair"),
    ("auburn", "Auburn", "auburn hair"),
    ("grey", "Grey", "grey hair"),
    ("white", "White", "white hair"),
    ("pink", "Pink", "pink hair"),
    ("blue", "Blue", "blue hair"),
    ("purple", "Purple", "purple hair"),
)

HAIR_STYLES = _options(
    ("long_straight", "Long & straight", "long straight hair"),
    ("long_wavy", "Long & wavy", "long wavy hair"),
    ("curly", "Curly", "curly hair"),
    ("short", "Short", "short hair"),
    ("bob", "Bob", "bob haircut"),
    ("ponytail", "Ponytail", "ponytail"),
    ("braids", "Braids", "braided hair"),
    ("bun", "Bun", "hair in a bun"),
    ("pixie", "Pixie cut", "pixie cut"),
    ("buzz", "Buzz cut", "buzz cut"),
)

EYE_COLORS = _options(
    ("brown", "Brown", "brown eyes"),
    ("blue", "Blue", "blue eyes"),
    ("green", "Green", "green eyes"),
    ("hazel", "Hazel", "hazel eyes"),
    ("grey", "Grey", "grey eyes"),
    ("amber", "Amber", "amber eyes"),
)

SKIN_TONES = _options(
    ("fair", "Fair", "fair skin"),
    ("light", "Light", "light skin"),
    ("medium", "Medium", "medium skin tone"),
    ("olive", "Olive", "olive skin"),
    ("tan", "Tan", "tanned skin"),
    ("dark", "Dark", "dark skin"),
)

BODY_TYPES = _options(
    ("slim", "Slim", "slim build"),
    ("athletic", "Athletic", "athletic build"),
    ("average", "Average", "average build"),
    ("curvy", "Curvy", "curvy figure"),
    ("muscular", "Muscular", "muscular build"),
    ("plus", "Plus size", "plus-size figure"),
)

HEIGHTS = _options(
    ("petite", "Petite", "petite"),
    ("average", "Average height", "average height"),
    ("tall", "Tall", "tall"),
)

CHEST_SIZES = _options(
    ("flat", "Flat", "flat chest"),
    ("small", "Small", "small chest"),
    ("medium", "Medium", "medium chest"),
    ("large", "Large", "large chest"),
    ("broad", "Broad", "broad chest"),
)

PERSONALITY_TRAITS = _options(
    ("caring", "Caring", "caring"),
    ("playful", "Playful", "playful"),
    ("shy", "Shy", "shy"),
    ("confident", "Confident", "confident"),
    ("sarcastic", "Sarcastic", "sarcastic"),
    ("romantic", "Romantic", "romantic"),
    ("adventurous", "Adventurous", "adventurous"),
    ("intellectual", "Intellectual", "intellectual"),
    ("mysterious", "Mysterious", "mysterious"),
    ("cheerful", "Cheerful", "cheerful"),
    ("calm", "Calm", "calm"),
    ("flirty", "Flirty", "flirty"),
    ("loyal", "Loyal", "loyal"),
    ("witty", "Witty", "witty"),
    ("protective", "Protective", "protective"),
    ("curious", "Curious", "curious"),
)

HOBBIES = _options(
    ("reading", "Reading", "reading"),
    ("gaming", "Gaming", "video games"),
    ("cooking", "Cooking", "cooking"),
    ("hiking", "Hiking", "hiking"),
    ("music", "Music", "music"),
    ("art", "Art", "drawing and painting"),
    ("fitness", "Fitness", "working out"),
    ("travel", "Travel", "travelling"),
    ("photography", "Photography", "photography"),
    ("dancing", "Dancing", "dancing"),
    ("movies", "Movies", "movies"),
    ("gardening", "Gardening", "gardening"),
    ("yoga", "Yoga", "yoga"),
    ("writing", "Writing", "writing"),
)

OCCUPATIONS = _options(
    ("student", "Student", "university student"),
    ("artist", "Artist", "artist"),
    ("nurse", "Nurse", "nurse"),
    ("teacher", "Teacher", "teacher"),
    ("engineer", "Engineer", "software engineer"),
    ("musician", "Musician", "musician"),
    ("chef", "Chef", "chef"),
    ("athlete", "Athlete", "professional athlete"),
    ("writer", "Writer", "writer"),
    ("barista", "Barista", "barista"),
    ("scientist", "Scientist", "scientist"),
    ("doctor", "Doctor", "doctor"),
    ("entrepreneur", "Entrepreneur", "entrepreneur"),
    ("librarian", "Librarian", "librarian"),
)

RELATIONSHIPS = _options(
    ("partner", "Partner", "romantic partner"),
    ("friend", "Friend", "friend"),
    ("best_friend", "Best friend", "best friend"),
    ("crush", "Crush", "crush"),
    ("spouse", "Spouse", "spouse"),
    ("roommate", "Roommate", "roommate"),
    ("coworker", "Coworker", "coworker"),
    ("mentor", "Mentor", "mentor"),
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

DEFAULT_STATE = {
    "current_outfit": "wearing a casual sweater and jeans",
    "current_location": "at home in the living room",
    "current_action": "relaxing on the sofa",
}


def choices(field: str) -> list[tuple[str, str]]:
    """Django ``choices`` for a catalogue field."""
    options = SINGLE_CHOICE.get(field) or MULTI_CHOICE[field][0]
    return [(o.value, o.label) for o in options]


def option(field: str, value: str) -> Option | None:
    options = SINGLE_CHOICE.get(field) or MULTI_CHOICE[field][0]
    return next((o for o in options if o.value == value), None)


def prompt_phrase(field: str, value: str) -> str:
    """The words prompts use for a stored value ('' when unknown or empty)."""
    found = option(field, value) if value else None
    return found.prompt if found else ""


def label(field: str, value: str) -> str:
    found = option(field, value) if value else None
    return found.label if found else value


def option_count() -> int:
    return sum(len(o) for o in SINGLE_CHOICE.values()) + sum(len(o) for o, _, _ in MULTI_CHOICE.values())
