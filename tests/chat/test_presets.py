"""Sampler presets: SillyTavern's chat-completion preset files import; bad ones are refused clearly."""

from __future__ import annotations

import json

import pytest

from chat.models import SamplerPreset
from chat.presets import MAX_PRESET_BYTES, PresetInvalid, preset_fields_from_json, preset_import_sillytavern

# As SillyTavern's saveOpenAIPreset writes it (trimmed: prompts and the rest are ignored).
SILLYTAVERN = {
    "chat_completion_source": "custom",
    "temperature": 1.15,
    "frequency_penalty": 0.1,
    "presence_penalty": 0.2,
    "top_p": 0.95,
    "top_k": 50,
    "min_p": 0.05,
    "repetition_penalty": 1.08,
    "openai_max_context": 16384,
    "openai_max_tokens": 420,
    "main_prompt": "Write {{char}}'s next reply.",
    "prompts": [{"identifier": "main", "content": "..."}],
}


def test_a_sillytavern_preset_imports_its_sampler_numbers(db, user):
    preset = preset_import_sillytavern(name="Euryale", raw=json.dumps(SILLYTAVERN), owner=user)
    preset.refresh_from_db()
    assert (preset.temperature, preset.top_p, preset.top_k, preset.min_p) == (1.15, 0.95, 50, 0.05)
    assert (preset.frequency_penalty, preset.presence_penalty, preset.repetition_penalty) == (0.1, 0.2, 1.08)
    assert preset.max_tokens == 420 and preset.owner == user and preset.source == "sillytavern"


def test_the_settings_spelling_is_read_too():
    fields = preset_fields_from_json(
        json.dumps({"temp_openai": 0.7, "top_p_openai": 0.9, "top_k_openai": 30, "min_p_openai": 0.1,
                    "freq_pen_openai": 0.3, "pres_pen_openai": 0.4, "repetition_penalty_openai": 1.1,
                    "stop": ["\nUser:"]})
    )  # fmt: skip
    assert fields == {
        "temperature": 0.7, "top_p": 0.9, "top_k": 30, "min_p": 0.1, "frequency_penalty": 0.3,
        "presence_penalty": 0.4, "repetition_penalty": 1.1, "stop": ["\nUser:"],
    }  # fmt: skip


def test_a_long_reply_length_is_brought_into_range():
    assert preset_fields_from_json('{"openai_max_tokens": 100000}')["max_tokens"] == 4000


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"main_prompt": "hi"}', "no sampler settings"),
        ('{"temperature": "hot"}', "temperature must be a number"),
        ('{"temperature": true}', "temperature must be a number"),
        ('{"temperature": 7}', "temperature must be between 0 and 2"),
        ('{"top_p": -0.5}', "top_p must be between 0 and 1"),
        ('{"temperature": 1, "stop": [1, 2]}', "stop must be a list of strings"),
        ('{"temperature": 1, "stop": ["a", "b", "c", "d", "e"]}', "at most 4 strings"),
        ('{"temperature": 1, "stop": ["\\u0000"]}', "NUL characters"),
        ('{"temperature": 1, "stop": ["\\ud800"]}', "NUL characters"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),  # deep nesting, not a crash
        ('{"temperature": 1, "x": "' + "a" * MAX_PRESET_BYTES + '"}', "larger than"),
    ],
)
def test_bad_presets_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(PresetInvalid) as caught:
        preset_fields_from_json(raw)
    assert message in caught.value.message


def test_a_preset_needs_a_name(db):
    with pytest.raises(PresetInvalid, match="name"):
        preset_import_sillytavern(name="  ", raw='{"temperature": 1}')
    assert not SamplerPreset.objects.exists()
