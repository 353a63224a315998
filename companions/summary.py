"""A readable summary of a companion's answers (wizard Finish step, detail page)."""

from __future__ import annotations

from typing import Any

from companions import catalogue

SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Style", [("style", "Style"), ("gender", "Gender")]),
    (
        "Look",
        [
            ("age", "Age"),
            ("ethnicity", "Ethnicity"),
            ("skin_tone", "Skin"),
            ("hair_color", "Hair colour"),
            ("hair_style", "Hair style"),
            ("eye_color", "Eyes"),
        ],
    ),
    (
        "Body",
        [
            ("body_type", "Body type"),
            ("height", "Height"),
            ("chest", "Chest"),
            ("distinguishing_features", "Features"),
        ],
    ),
    (
        "Identity",
        [
            ("name", "Name"),
            ("personality_traits", "Personality"),
            ("hobbies", "Hobbies"),
            ("occupation", "Occupation"),
            ("relationship", "Relationship"),
            ("backstory", "Backstory"),
            ("greeting", "Greeting"),
        ],
    ),
]


def _display(field: str, value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(catalogue.label(field, v) for v in value)
    if field in catalogue.SINGLE_CHOICE or field in catalogue.MULTI_CHOICE:
        return catalogue.label(field, str(value or ""))
    return "" if value is None else str(value)


def companion_summary(values: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(section, [(label, display value), ...]), ...] skipping empty answers."""
    summary = []
    for section, fields in SECTIONS:
        rows = [(label, _display(field, values.get(field))) for field, label in fields]
        summary.append((section, [(label, shown) for label, shown in rows if shown]))
    return summary
