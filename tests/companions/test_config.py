"""``Companion.config`` is raw JSON moderators can edit: readers cope with any shape, the admin explains."""

import json

import pytest
from django.contrib.admin.sites import site as admin_site
from django.core.exceptions import ValidationError

from chat import prompts
from companions.cards import build_card, card_prompt_defaults
from companions.config import DEFAULTS, config_problems, effective_config
from companions.models import Companion
from tests.companions.factories import make_companion


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (None, DEFAULTS),
        ([], DEFAULTS),
        ("hot", DEFAULTS),
        ({"temperature": "hot", "max_reply_tokens": None, "image_mode": "always"}, DEFAULTS),
        ({"temperature": float("nan"), "max_reply_tokens": True}, DEFAULTS),
        (
            {"temperature": 9, "max_reply_tokens": 10**12},
            {**DEFAULTS, "temperature": 2.0, "max_reply_tokens": 2000},
        ),
        (
            {"temperature": -1, "max_reply_tokens": 1},
            {**DEFAULTS, "temperature": 0.0, "max_reply_tokens": 50},
        ),
        (
            {"temperature": 1, "max_reply_tokens": 300.0},
            {**DEFAULTS, "temperature": 1.0, "max_reply_tokens": 300},
        ),
        ({"image_mode": "every_reply"}, {**DEFAULTS, "image_mode": "every_reply"}),
    ],
)
def test_effective_config_always_gives_usable_values(stored, expected):
    config = effective_config(stored)
    assert {name: config[name] for name in DEFAULTS} == expected
    assert type(config["max_reply_tokens"]) is int and type(config["temperature"]) is float


def test_unknown_keys_are_kept():
    assert effective_config({"card": {"scenario": "x"}})["card"] == {"scenario": "x"}


@pytest.mark.parametrize(
    ("stored", "words"),
    [
        ([], "JSON object"),
        ({"temperature": "hot"}, '"temperature" must be a number from 0.0 to 2.0'),
        ({"max_reply_tokens": 10.5}, '"max_reply_tokens" must be a whole number from 50 to 2000'),
        ({"max_reply_tokens": 5000}, '"max_reply_tokens" must be a whole number from 50 to 2000'),
        ({"image_mode": "always"}, '"image_mode" must be one of: every_reply, on_request'),
        ({"card": "a string"}, '"card" must be a JSON object'),
    ],
)
def test_config_problems_say_what_is_wrong(stored, words):
    assert any(words in problem for problem in config_problems(stored))


def test_a_good_config_has_no_problems():
    assert config_problems({**DEFAULTS, "card": {"scenario": "x"}, "anything": [1, 2]}) == []


@pytest.mark.django_db
def test_the_model_refuses_a_bad_config(user):
    companion = make_companion(user)
    companion.config = {"temperature": "hot"}
    with pytest.raises(ValidationError) as refused:
        companion.full_clean()
    assert "temperature" in str(refused.value.message_dict["config"])


@pytest.mark.django_db
def test_the_admin_form_shows_the_problem_and_saves_nothing(user, rf):
    companion = make_companion(user)
    model_admin = admin_site._registry[Companion]
    request = rf.post("/")
    request.user = user
    form_class = model_admin.get_form(request, companion)
    data = {
        field: value
        for field, value in form_class(instance=companion).initial.items()
        if value is not None and not isinstance(value, list)
    }
    data["config"] = json.dumps({"max_reply_tokens": "lots"})
    form = form_class(data=data, instance=companion)
    assert not form.is_valid()
    assert "max_reply_tokens" in str(form.errors["config"])
    companion.refresh_from_db()
    assert companion.config.get("max_reply_tokens") != "lots"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "config",
    [
        [],
        "text",
        {"card": "not an object"},
        {"card": ["a", "list"]},
        {"card": {"defaults": "age", "personality": 5, "alternate_greetings": "hi", "tags": [1, "two"]}},
        {"card": {"character_book": "a string", "scenario": None}},
    ],
)
def test_prompts_and_exports_work_whatever_the_config_holds(user, config):
    companion = make_companion(user)
    Companion.objects.filter(pk=companion.pk).update(config=config)
    companion.refresh_from_db()
    messages = prompts.build_chat_messages(companion, user_name="Sam", history=[("user", "Hello")])
    assert messages[0]["role"] == "system" and companion.name in messages[0]["content"]
    assert card_prompt_defaults(companion) == set()
    data = build_card(companion)["data"]
    assert data["name"] == companion.name
    assert all(isinstance(data[k], str) for k in ("personality", "scenario", "mes_example"))
    assert all(isinstance(t, str) for t in data["tags"] + data["alternate_greetings"])
