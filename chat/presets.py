"""Sampler presets: import from SillyTavern's chat-completion preset JSON, and the checks every preset passes.

SillyTavern saves a chat-completion preset (``saveOpenAIPreset`` in its
``public/scripts/openai.js``) as JSON named after the file, with the wire
names ``temperature``, ``top_p``, ``top_k``, ``min_p``, ``frequency_penalty``,
``presence_penalty``, ``repetition_penalty`` and ``openai_max_tokens``; its
settings file keeps the same values as ``temp_openai``, ``top_p_openai``,
``top_k_openai``, ``min_p_openai``, ``freq_pen_openai``, ``pres_pen_openai``,
``repetition_penalty_openai``. Both spellings are read (and ``max_tokens``
and ``stop``), so a hand-written preset works too. Everything else in the file
(prompts, proxy settings, ...) is ignored: a preset is numbers, nothing else.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.utils.translation import gettext as _

from accounts.models import User
from chat.backend_models import SamplerPreset
from chat.language import translated
from companionhub.text import UNSTORABLE_MESSAGE, has_unstorable_text

MAX_PRESET_BYTES = 512 * 1024  # SillyTavern presets carry their prompt lists: tens of KB is usual
MAX_NAME_CHARS = 80
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 100

# preset field -> keys read, first found wins; (low, high) the accepted range.
KEYS: dict[str, tuple[str, ...]] = {
    "temperature": ("temp_openai", "temperature", "temp"),
    "top_p": ("top_p_openai", "top_p"),
    "min_p": ("min_p_openai", "min_p"),
    "top_k": ("top_k_openai", "top_k"),
    "repetition_penalty": ("repetition_penalty_openai", "repetition_penalty", "rep_pen"),
    "frequency_penalty": ("freq_pen_openai", "frequency_penalty", "freq_pen"),
    "presence_penalty": ("pres_pen_openai", "presence_penalty", "presence_pen"),
    "max_tokens": ("openai_max_tokens", "max_tokens", "genamt"),
}
RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "min_p": (0.0, 1.0),
    "top_k": (0, 1000),
    "repetition_penalty": (0.0, 3.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
    "max_tokens": (16, 4000),
}
STOP_KEYS = ("stop", "stopping_strings", "stop_sequences")


class PresetInvalid(Exception):
    """The preset cannot be used; ``message`` says why in words a user can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _number(field: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PresetInvalid(_("%(field)s must be a number.") % {"field": field})
    low, high = RANGES[field]
    if field == "max_tokens":  # a reply length: brought into range rather than refused
        return int(min(max(value, low), high))
    if not low <= value <= high:
        raise PresetInvalid(
            _("%(field)s must be between %(low)s and %(high)s (it is %(value)s).")
            % {"field": field, "low": f"{low:g}", "high": f"{high:g}", "value": f"{value:g}"}
        )
    return int(value) if field == "top_k" else float(value)


def _stop(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value] if value else []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise PresetInvalid(_("%(field)s must be a list of strings.") % {"field": "stop"})
    if len(value) > MAX_STOP_STRINGS or any(len(s) > MAX_STOP_CHARS for s in value):
        raise PresetInvalid(
            _("%(field)s takes at most %(count)s strings of %(chars)s characters.")
            % {"field": "stop", "count": MAX_STOP_STRINGS, "chars": MAX_STOP_CHARS}
        )
    if has_unstorable_text(value):  # the database cannot hold them (companionhub.text)
        raise PresetInvalid(f"stop: {translated(UNSTORABLE_MESSAGE)}")
    return [s for s in value if s]


def preset_fields_from_json(raw: bytes | str) -> dict[str, Any]:
    """The sampler fields of a preset file; ``PresetInvalid`` for anything unusable."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="replace")
    if len(raw) > MAX_PRESET_BYTES:
        raise PresetInvalid(_("The preset is larger than %(size)s KB.") % {"size": MAX_PRESET_BYTES // 1024})
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise PresetInvalid(_("The preset is not valid JSON.")) from None
    if not isinstance(data, dict):
        raise PresetInvalid(_('The preset must be a JSON object, like {"temperature": 0.8}.'))
    fields: dict[str, Any] = {}
    for field, keys in KEYS.items():
        key = next((k for k in keys if k in data and data[k] is not None), None)
        if key is not None:
            fields[field] = _number(field, data[key])
    stop_key = next((k for k in STOP_KEYS if k in data), None)
    if stop_key is not None:
        fields["stop"] = _stop(data[stop_key])
    if not fields:
        raise PresetInvalid(_("The preset holds no sampler settings (temperature, top_p, ...)."))
    return fields


def preset_import_sillytavern(*, name: str, raw: bytes | str, owner: User | None = None) -> SamplerPreset:
    """Create a preset from a SillyTavern (or plain) preset file.

    ``owner`` None: a shared preset (moderators, in the admin); a user: theirs alone.
    """
    name = (name or "").strip()[:MAX_NAME_CHARS]
    if not name:
        raise PresetInvalid("Give the preset a name.")
    fields = preset_fields_from_json(raw)
    return SamplerPreset.objects.create(name=name, owner=owner, source="sillytavern", **fields)


def preset_problems(preset: SamplerPreset) -> list[str]:
    """What is wrong with a preset edited in the admin (the model validators check the ranges)."""
    try:
        _stop(preset.stop)
    except PresetInvalid as exc:
        return [exc.message]
    return []
