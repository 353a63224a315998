"""A readable summary of a companion's answers (wizard Finish step, detail page)."""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy

from companions import catalogue

# Section and row labels are lazy: translated when the page shows them.
SECTIONS: list[tuple[Promise, list[tuple[str, Promise]]]] = [
    (gettext_lazy("Style"), [("style", gettext_lazy("Style")), ("gender", gettext_lazy("Gender"))]),
    (
        gettext_lazy("Look"),
        [
            ("age", gettext_lazy("Age")),
            ("ethnicity", gettext_lazy("Ethnicity")),
            ("skin_tone", gettext_lazy("Skin")),
            ("hair_color", gettext_lazy("Hair colour")),
            ("hair_style", gettext_lazy("Hair style")),
            ("eye_color", gettext_lazy("Eyes")),
        ],
    ),
    (
        gettext_lazy("Body"),
        [
            ("body_type", gettext_lazy("Body type")),
            ("height", gettext_lazy("Height")),
            ("chest", gettext_lazy("Chest")),
            ("distinguishing_features", gettext_lazy("Features")),
        ],
    ),
    (
        gettext_lazy("Identity"),
        [
            ("name", gettext_lazy("Name")),
            ("personality_traits", gettext_lazy("Personality")),
            ("hobbies", gettext_lazy("Hobbies")),
            ("occupation", gettext_lazy("Occupation")),
            ("relationship", gettext_lazy("Relationship")),
            ("backstory", gettext_lazy("Backstory")),
            ("greeting", gettext_lazy("Greeting")),
        ],
    ),
]


def _display(field: str, value: Any) -> str:
    """A stored answer as shown: catalogue values by their label in the active language."""
    if isinstance(value, list):
        return ", ".join(catalogue.label(field, v) for v in value)
    if field in catalogue.SINGLE_CHOICE or field in catalogue.MULTI_CHOICE:
        return catalogue.label(field, str(value or ""))
    return "" if value is None else str(value)


def companion_summary(values: dict[str, Any]) -> list[tuple[Promise, list[tuple[Promise, str]]]]:
    """[(section, [(label, display value), ...]), ...] skipping empty answers."""
    summary = []
    for section, fields in SECTIONS:
        gender = str(values.get("gender") or "")
        rows = [
            (label, _display(field, values.get(field)))
            for field, label in fields
            if catalogue.asks(field, gender)
        ]
        summary.append((section, [(label, shown) for label, shown in rows if shown]))
    return summary
