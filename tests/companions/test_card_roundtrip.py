"""Round trips: a card SillyTavern wrote comes back out of CompanionHub unchanged, field by field."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from companions import cards
from companions.selectors import companion_header_bytes
from companions.services import companion_import_card
from lorebooks.formats import to_character_book
from lorebooks.selectors import parsed_book
from tests.companions.sillytavern import LOREBOOK, js_stringify, st_character, st_png, st_v3, st_write

pytestmark = pytest.mark.django_db


def without_ours(card: dict) -> dict:
    """The card less ``extensions.companionhub``, which is ours to write."""
    card = copy.deepcopy(card)
    card["data"]["extensions"].pop(cards.HUB_EXTENSION, None)
    return card


def import_file(user, raw: bytes, name: str):
    companion, imported = companion_import_card(user=user, upload=SimpleUploadedFile(name, raw))
    companion.refresh_from_db()
    return companion, imported


def png_cards(raw: bytes) -> tuple[dict, dict]:
    chunks = cards.png_text_chunks(raw)
    return (json.loads(base64.b64decode(chunks["chara"])), json.loads(base64.b64decode(chunks["ccv3"])))


def assert_same_fields(ours: dict, theirs: dict) -> None:
    """Field by field, so a failure names the field."""
    assert set(ours) == set(theirs)
    assert set(ours["data"]) == set(theirs["data"])
    for name in theirs["data"]:
        assert ours["data"][name] == theirs["data"][name], name
    for name in theirs:
        assert ours[name] == theirs[name], name


def test_a_sillytavern_png_round_trips_unchanged_in_both_chunks(user):
    char = st_character()
    companion, imported = import_file(user, st_png(char), "seraphina.png")
    assert imported.left_out == []
    v2, v3 = png_cards(cards.build_card_png(cards.build_card(companion), companion_header_bytes(companion)))
    assert_same_fields(without_ours(v2), char)
    assert_same_fields(without_ours(v3), st_v3(char))


def test_a_sillytavern_v2_json_round_trips_unchanged(client, user):
    char = st_character()
    companion, _ = import_file(user, js_stringify(char).encode(), "seraphina.json")
    client.force_login(user)
    response = client.get(reverse("companions:card_export_json", args=[companion.pk]), {"spec": "v2"})
    assert_same_fields(without_ours(json.loads(response.content)), char)


def test_a_sillytavern_v3_json_round_trips_unchanged(client, user):
    card = st_v3(st_character())
    card["data"].update(
        nickname="Sera",
        creation_date=1764538285,
        modification_date=1764538999,
        creator_notes_multilingual={"en": "Works best with long replies.", "fr": "Réponses longues."},
        source=["https://example.invalid/seraphina"],
        assets=[{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
    )
    companion, _ = import_file(user, json.dumps(card, indent=2).encode(), "seraphina.json")
    client.force_login(user)
    response = client.get(reverse("companions:card_export_json", args=[companion.pk]))
    assert_same_fields(without_ours(json.loads(response.content)), card)


def test_the_stored_text_is_tidy_for_chats_and_the_export_as_written(user):
    char = st_character()
    companion, _ = import_file(user, st_png(char), "seraphina.png")
    assert (
        companion.backstory == "{{char}} is a guardian of Eldoria's forest.\nShe heals travellers — gently."
    )
    assert companion.config["card"]["alternate_greetings"] == ["*She hums a song.*", "Oh! You're awake."]
    assert "character_book" not in companion.config["card"]
    assert to_character_book(parsed_book(companion.card_book)) == LOREBOOK
    assert cards.card_greetings(companion)[1:] == ["*She hums a song.*", "Oh! You're awake."]


def test_an_edited_field_is_exported_as_edited_and_its_top_level_copy_follows(user):
    char = st_character()
    companion, _ = import_file(user, st_png(char), "seraphina.png")
    companion.greeting = "Hello again."
    companion.save()
    card = cards.build_card(companion)
    assert card["data"]["first_mes"] == card["first_mes"] == "Hello again."
    assert card["data"]["description"] == char["data"]["description"]  # the others as written


def test_long_text_is_kept_whole_for_chats_and_export(user):
    long_description = "A long life story. " * 400  # 7,600 characters: real cards run this long
    greetings = [f"Greeting {i}" for i in range(30)]
    char = st_character(description=long_description, alternate_greetings=greetings)
    companion, _ = import_file(user, js_stringify(char).encode(), "long.json")
    assert companion.backstory == long_description.strip()
    assert companion.config["card"]["alternate_greetings"] == greetings
    data = cards.build_card(companion, spec=cards.SPEC_V2)["data"]
    assert data["description"] == long_description
    assert data["alternate_greetings"] == greetings


def test_a_long_text_edited_here_is_exported_as_edited(user):
    char = st_character(description="x" * 3000)
    companion, _ = import_file(user, js_stringify(char).encode(), "long.json")
    companion.backstory = "Rewritten."
    assert cards.build_card(companion)["data"]["description"] == "Rewritten."


def test_a_card_missing_optional_fields_does_not_gain_them(user):
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": dict(st_character()["data"])}
    del card["data"]["group_only_greetings"]
    companion, _ = import_file(user, json.dumps(card).encode(), "c.json")
    v2 = cards.build_card(companion, spec=cards.SPEC_V2)
    assert "group_only_greetings" not in v2["data"] and "nickname" not in v2["data"]
    assert cards.build_card(companion)["data"]["group_only_greetings"] == []  # V3 requires it


def test_a_v1_card_is_exported_with_the_v2_fields(user):
    companion, _ = import_file(
        user, json.dumps({"char_name": "Old", "char_greeting": "Hi"}).encode(), "v1.json"
    )
    data = cards.build_card(companion)["data"]
    assert (data["name"], data["first_mes"], data["creator_notes"], data["tags"]) == ("Old", "Hi", "", [])


def test_our_png_writer_writes_the_bytes_sillytavern_writes():
    char = st_character()
    picture = st_png({"spec": "chara_card_v2", "data": {"name": "old card, replaced"}})
    assert cards.build_card_png(char, picture) == st_write(picture, js_stringify(char))


def test_a_png_picture_keeps_its_pixels_and_chunks():
    picture = st_png(st_character(), size=(7, 5))
    raw = cards.build_card_png(cards.with_spec(st_character(), cards.SPEC_V3), picture)
    before, after = picture[: picture.index(b"tEXt") - 4], raw[: raw.index(b"tEXt") - 4]
    assert before == after  # header and image data untouched
    assert raw.endswith(b"IEND\xaeB`\x82")
