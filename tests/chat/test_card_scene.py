"""An imported card starts in its own scene: one analysis of its scenario and first message
by the companion's LLM at import, the default scene when no back end answers."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from chat import scene_analysis
from chat.prompts import ANALYSIS_MARKER
from companions import catalogue
from companions.models import Companion
from tests.companions.test_cards import v2_card

IMPORT = reverse("companions:card_import")
DEFAULT = catalogue.DEFAULT_STATE
ROOFTOP = {"outfit": "a long black coat", "location": "on a rainy rooftop", "action": "waiting for you"}


def import_card(client, **data) -> Companion:
    raw = json.dumps(v2_card(**data)).encode()
    response = client.post(IMPORT, {"card": SimpleUploadedFile("card.json", raw)})
    assert response.status_code == 302
    return Companion.objects.get()


def scene_of(companion: Companion) -> dict[str, str]:
    companion.refresh_from_db()
    return {
        "current_outfit": companion.current_outfit,
        "current_location": companion.current_location,
        "current_action": companion.current_action,
    }


def test_the_scene_is_taken_from_the_back_ends_answer(client, user, use_fake_llm):
    use_fake_llm.answer_when(ANALYSIS_MARKER, json.dumps(ROOFTOP))
    client.force_login(user)
    companion = import_card(client, scenario="{{user}} meets {{char}} on a rooftop in the rain.")
    assert scene_of(companion) == {f"current_{k}": v for k, v in ROOFTOP.items()}
    asked = [r for r in use_fake_llm.requests if ANALYSIS_MARKER in json.dumps(r["json"])]
    assert len(asked) == 1  # one call at import
    prompt = json.dumps(asked[0]["json"])
    assert "Alice meets Seraphina on a rooftop in the rain." in prompt  # macros filled in
    assert "Seraphina kneels beside you." in prompt  # the first message is read too


def test_an_error_keeps_the_default_scene_and_the_import_succeeds(client, user, use_fake_llm):
    use_fake_llm.answer_when(ANALYSIS_MARKER, status=500)
    client.force_login(user)
    companion = import_card(client)
    assert scene_of(companion) == DEFAULT


def test_a_back_end_that_is_down_keeps_the_default_scene(client, user, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens there
    settings.LLM_API_KEY = "test-key"
    client.force_login(user)
    companion = import_card(client)
    assert scene_of(companion) == DEFAULT


def test_a_slow_back_end_is_not_waited_for(client, user, use_fake_llm, monkeypatch):
    monkeypatch.setattr(scene_analysis, "CARD_SCENE_TIMEOUT", (1.0, 0.2))
    use_fake_llm.answer_when(ANALYSIS_MARKER, json.dumps(ROOFTOP), delay=2)
    client.force_login(user)
    companion = import_card(client)
    assert scene_of(companion) == DEFAULT  # the answer came after the import stopped waiting


def test_a_card_without_scenario_or_first_message_asks_nothing(client, user, use_fake_llm):
    client.force_login(user)
    companion = import_card(client, scenario="", first_mes="")
    assert scene_of(companion) == DEFAULT
    assert not [r for r in use_fake_llm.requests if ANALYSIS_MARKER in json.dumps(r["json"])]


@pytest.mark.parametrize(
    ("scenario", "location"),
    [
        ("{{char}} and {{user}} meet for a picnic in a park on a sunny day.", "in the park"),
        ("{{char}} waits for {{user}} at the beach at sunset.", "at the beach"),
    ],
)
def test_the_demo_back_end_reads_the_card(client, user, scenario, location):
    client.force_login(user)
    companion = import_card(client, scenario=scenario, first_mes="*waves* There you are!")
    assert scene_of(companion)["current_location"] == location
