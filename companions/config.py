"""Advanced per-companion settings kept in ``Companion.config``.

The JSON column is written by the settings form, by card imports and by
moderators in the admin, so readers never trust its shape:
``effective_config`` always returns usable values (a bad or missing one
falls back to its default, a number out of range is clamped), and
``config_problems`` says what is wrong, for the admin form.
"""

from __future__ import annotations

import math
from typing import Any

from django.utils.translation import gettext_lazy

# Stored values, with labels translated when the settings page shows them.
IMAGE_MODES = [
    ("on_request", gettext_lazy("Only when I ask")),
    ("every_reply", gettext_lazy("With every reply")),
]

DEFAULTS: dict[str, Any] = {
    "temperature": 0.8,
    "max_reply_tokens": 400,
    "image_mode": "on_request",
    # The companion speaks its replies (when its owner has "read replies aloud" on), in
    # ``voice`` (a name the audio back end knows; blank: the back end's default) at ``voice_speed``.
    "voice_enabled": False,
    "voice": "",
    "voice_speed": 1.0,
}
TEMPERATURE_LIMITS = (0.0, 2.0)
MAX_REPLY_TOKENS_LIMITS = (50, 2000)  # whole numbers: the form's field is an IntegerField
VOICE_SPEED_LIMITS = (0.5, 2.0)
VOICE_NAME_MAX = 100
LIMITS: dict[str, tuple[float, float]] = {
    "temperature": TEMPERATURE_LIMITS,
    "max_reply_tokens": MAX_REPLY_TOKENS_LIMITS,
    "voice_speed": VOICE_SPEED_LIMITS,
}
_IMAGE_MODE_VALUES = frozenset(value for value, _ in IMAGE_MODES)


def effective_config(config: Any) -> dict[str, Any]:
    """Defaults overlaid with the stored values (unknown keys are kept, e.g. from imports)."""
    stored = config if isinstance(config, dict) else {}
    merged = {**DEFAULTS, **stored}
    for name in DEFAULTS:
        merged[name] = _usable(name, merged[name])
    return merged


def config_problems(config: Any) -> list[str]:
    """What is wrong with a stored config, in words a moderator can act on (empty when fine)."""
    if not isinstance(config, dict):
        return ['The advanced settings must be a JSON object, like {"temperature": 0.8}.']
    problems = []
    for name in DEFAULTS:
        if name in config and _usable(name, config[name]) != config[name]:
            problems.append(_expected(name))
    card = config.get("card")
    if card is not None and not isinstance(card, dict):
        problems.append('"card" must be a JSON object (the imported character card), or left out.')
    return problems


def _usable(name: str, value: Any) -> Any:
    default = DEFAULTS[name]
    if name == "image_mode":
        return value if value in _IMAGE_MODE_VALUES else default
    if name == "voice_enabled":
        return value if isinstance(value, bool) else default
    if name == "voice":
        usable = isinstance(value, str) and len(value) <= VOICE_NAME_MAX and value.isprintable()
        return value.strip() if usable else default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    low, high = LIMITS[name]
    value = min(max(value, low), high)
    return int(value) if isinstance(default, int) else float(value)


def _expected(name: str) -> str:
    if name == "image_mode":
        return f'"image_mode" must be one of: {", ".join(sorted(_IMAGE_MODE_VALUES))}.'
    if name == "voice_enabled":
        return '"voice_enabled" must be true or false.'
    if name == "voice":
        return f'"voice" must be a voice name of at most {VOICE_NAME_MAX} characters (blank: the default).'
    low, high = LIMITS[name]
    kind = "a whole number" if isinstance(DEFAULTS[name], int) else "a number"
    return f'"{name}" must be {kind} from {low} to {high}.'
