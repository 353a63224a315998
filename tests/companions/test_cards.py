"""Character cards: reading, mapping to a companion, building, refusing bad files."""

import base64
import io
import json
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation
from PIL import Image, PngImagePlugin

from companions import cards
from companions.cards import CardRejected, build_card, build_card_png, fill_macros, parse_card_file
from companions.forms import CompanionSettingsForm
from companions.models import Companion
from companions.services import companion_import_card
from lorebooks.formats import to_character_book
from media.imaging import ImageRejected
from media.models import StoredImage
from tests.companions.factories import make_companion, png_bytes

MAX = 10 * 1024 * 1024
EXTRAS_MAX = 256 * 1024

CARD_FIELDS = (
    "name",
    "backstory",
    "greeting",
    "system_prompt",
    "style",
    "gender",
    "age",
    "ethnicity",
    "skin_tone",
    "hair_color",
    "hair_style",
    "eye_color",
    "body_type",
    "height",
    "chest",
    "distinguishing_features",
    "personality_traits",
    "hobbies",
    "occupation",
    "relationship",
    "visual_prompt",
)


def v2_card(**data) -> dict:
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Seraphina",
            "description": "{{char}} is a guardian of the forest. She heals travellers.",
            "personality": "gentle, protective, wise",
            "scenario": "{{user}} wakes up in {{char}}'s glade after an attack.",
            "first_mes": "*Seraphina kneels beside you.* You're safe now, {{user}}.",
            "mes_example": "<START>\n{{user}}: Who are you?\n{{char}}: A friend of the forest.",
            "creator_notes": "Works best with long replies.",
            "system_prompt": "{{original}}\nWrite in third person.",
            "post_history_instructions": "Stay gentle; never break character.",
            "alternate_greetings": ["*She hums a song.*", "Oh! You're awake."],
            "tags": ["fantasy", "female", "healer"],
            "creator": "someone",
            "character_version": "1.2",
            "extensions": {"talkativeness": "0.5", "fav": False, "depth_prompt": {"prompt": "x", "depth": 4}},
            **data,
        },
    }


LOREBOOK = {
    "name": "Eldoria",
    "description": "The forest realm",
    "scan_depth": 4,
    "token_budget": 512,
    "recursive_scanning": False,
    "extensions": {},
    "entries": [
        {
            "keys": ["glade", "forest"],
            "content": "The glade is protected by ancient magic.",
            "extensions": {"position": 0, "probability": 100},
            "enabled": True,
            "insertion_order": 100,
            "case_sensitive": False,
            "id": 0,
            "comment": "glade",
            "selective": False,
            "secondary_keys": [],
            "constant": False,
            "position": "before_char",
        },
        {
            "keys": ["shadowfang"],
            "content": "Shadowfangs are corrupted wolves.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 90,
            "id": 1,
        },
    ],
}


def b64(obj) -> bytes:
    return base64.b64encode(json.dumps(obj).encode())


def card_png(chunks: dict[str, bytes | str], *, size=(32, 24)) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value.decode() if isinstance(value, bytes) else value)
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 90)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def upload(raw: bytes, name="card.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, raw)


def max_lengths() -> dict[str, int]:
    return {name: Companion._meta.get_field(name).max_length for name in cards.COLUMN_FOR.values()} | {
        "distinguishing_features": 300,
        "visual_prompt": 500,
    }


# --- reading -----------------------------------------------------------------------


def test_a_v2_json_card_is_read():
    parsed = parse_card_file(json.dumps(v2_card()).encode(), max_bytes=MAX)
    assert parsed.spec == "chara_card_v2"
    assert parsed.data["name"] == "Seraphina"
    assert parsed.image is None


def test_a_v1_card_with_flat_and_old_field_names_is_read():
    raw = json.dumps({"char_name": "Old", "char_persona": "grumpy", "char_greeting": "Hm."}).encode()
    parsed = parse_card_file(raw, max_bytes=MAX)
    assert parsed.spec == "chara_card_v1"
    assert parsed.data == {"name": "Old", "personality": "grumpy", "first_mes": "Hm."}


def test_a_png_card_is_read_from_its_chara_chunk_and_keeps_the_picture():
    raw = card_png({"chara": b64(v2_card())})
    parsed = parse_card_file(raw, max_bytes=MAX)
    assert parsed.data["name"] == "Seraphina"
    assert parsed.image == raw


def test_the_chunk_is_found_after_the_image_data():
    """Card tools append the chunk just before IEND, after IDAT."""
    raw = png_bytes()
    body = b"chara\0" + b64(v2_card(name="Late"))
    chunk = len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")
    raw = raw[:-12] + chunk + raw[-12:]
    assert parse_card_file(raw, max_bytes=MAX).data["name"] == "Late"


def test_v3_is_preferred_over_v2_when_a_png_has_both():
    v3 = v2_card(name="Three", nickname="Tri", group_only_greetings=["Hi all"])
    v3["spec"], v3["spec_version"] = "chara_card_v3", "3.0"
    raw = card_png({"chara": b64(v2_card(name="Two")), "ccv3": b64(v3)})
    parsed = parse_card_file(raw, max_bytes=MAX)
    assert parsed.spec == "chara_card_v3"
    assert parsed.data["name"] == "Three"


def test_a_json_card_with_a_byte_order_mark_is_read():
    raw = "\ufeff".encode() + json.dumps(v2_card()).encode()
    assert parse_card_file(raw, max_bytes=MAX).data["name"] == "Seraphina"


# --- refusing bad files ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"", "empty", "empty"),
        (b"GIF89a not a card", "not_a_card_file", "neither a PNG"),
        (b"%PDF-1.7", "not_a_card_file", "neither a PNG"),
        (png_bytes(), "no_card", "no character card"),
        (card_png({"chara": "!!! not base64 !!!"}), "bad_base64", "not valid base64"),
        (card_png({"chara": base64.b64encode(b"{not json").decode()}), "bad_json", "not valid JSON"),
        (b'{"spec": "chara_card_v2", "data": {"name": "x",}', "bad_json", "not valid JSON"),
        (b"{" * 50 + b"}" * 50, "bad_json", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not_a_card_file", "neither"),
        (b"{" + b'"a":[' * 100_000 + b"]" * 100_000 + b"}", "bad_json", ""),
        (json.dumps(["a", "list"]).encode(), "not_a_card_file", "neither"),
        (
            json.dumps({"spec": "chara_card_v2", "data": {"description": "nameless"}}).encode(),
            "no_name",
            "name",
        ),
        (json.dumps({"spec": "chara_card_v2", "data": {"name": "   "}}).encode(), "no_name", "name"),
        (json.dumps({"description": "V1 without a name"}).encode(), "no_name", "name"),
        (json.dumps({"spec": "something_else", "data": {"name": "x"}}).encode(), "not_a_card", "Unsupported"),
        (card_png({"chara": b64(["not", "a", "dict"])}), "not_a_card", "not a character card"),
    ],
    ids=[
        "empty",
        "gif",
        "pdf",
        "png-without-chunk",
        "bad-base64",
        "png-bad-json",
        "json-trailing-comma",
        "json-unbalanced",
        "json-list-deep",
        "json-too-deep",
        "json-list",
        "missing-name",
        "blank-name",
        "v1-missing-name",
        "unknown-spec",
        "png-json-not-object",
    ],
)
def test_bad_files_are_refused_with_a_clear_message(raw, code, words):
    with pytest.raises(CardRejected) as caught:
        parse_card_file(raw, max_bytes=MAX)
    assert caught.value.code == code
    assert words in caught.value.message


def test_a_file_over_the_limit_is_refused_before_parsing():
    with pytest.raises(CardRejected) as caught:
        parse_card_file(json.dumps(v2_card()).encode(), max_bytes=100)
    assert caught.value.code == "too_large"


@pytest.mark.parametrize(
    ("field", "value"),
    [("description", {"a": 1}), ("scenario", True), ("tags", "one,two"), ("alternate_greetings", [1, 2])],
)
def test_fields_of_the_wrong_type_are_refused(field, value):
    parsed = parse_card_file(json.dumps(v2_card(**{field: value})).encode(), max_bytes=MAX)
    with pytest.raises(CardRejected) as caught:
        cards.to_companion(parsed, max_lengths=max_lengths(), extras_max_bytes=EXTRAS_MAX)
    assert caught.value.code == "bad_field"
    assert field in caught.value.message


# --- mapping ---------------------------------------------------------------------------


def test_card_fields_map_to_columns_and_config():
    imported = cards.to_companion(
        parse_card_file(json.dumps(v2_card(character_book=LOREBOOK, x_tool="kept")).encode(), max_bytes=MAX),
        max_lengths=max_lengths(),
        extras_max_bytes=EXTRAS_MAX,
    )
    values, card = imported.values, imported.card_config
    assert values["name"] == "Seraphina"
    assert values["backstory"].startswith("{{char}} is a guardian")
    assert values["greeting"].startswith("*Seraphina kneels")
    assert values["system_prompt"].endswith("Write in third person.")
    assert values["gender"] == "female"  # from the pronouns
    assert card["personality"] == "gentle, protective, wise"
    assert card["scenario"].startswith("{{user}} wakes up")
    assert card["mes_example"].startswith("<START>")
    assert card["post_history_instructions"] == "Stay gentle; never break character."
    assert card["alternate_greetings"] == ["*She hums a song.*", "Oh! You're awake."]
    assert card["tags"] == ["fantasy", "female", "healer"]
    assert (card["creator_notes"], card["creator"], card["character_version"]) == (
        "Works best with long replies.",
        "someone",
        "1.2",
    )
    assert card["extensions"]["depth_prompt"] == {"prompt": "x", "depth": 4}
    assert "character_book" not in card  # it is a lorebook of its own, one source of truth
    assert imported.book is not None and to_character_book(imported.book) == LOREBOOK
    assert card["unknown"] == {"x_tool": "kept"}
    assert imported.look_defaulted


def test_the_defaults_pass_the_wizards_validation():
    parsed = parse_card_file(json.dumps({"name": "Bare"}).encode(), max_bytes=MAX)
    imported = cards.to_companion(parsed, max_lengths=max_lengths(), extras_max_bytes=EXTRAS_MAX)
    form = CompanionSettingsForm(data=imported.values)
    assert form.is_valid(), form.errors
    assert imported.values["gender"] == "non_binary"


def test_long_text_is_kept_whole():
    card = v2_card(
        description="d" * 50_000,
        first_mes="g" * 20_000,
        personality="p" * 50_000,
        tags=[f"t{i}" for i in range(80)],
        alternate_greetings=["a" * 2000] * 30,
    )
    imported = cards.to_companion(
        parse_card_file(json.dumps(card).encode(), max_bytes=MAX),
        max_lengths=max_lengths(),
        extras_max_bytes=EXTRAS_MAX,
    )
    assert imported.values["backstory"] == "d" * 50_000
    assert imported.values["greeting"] == "g" * 20_000
    assert imported.card_config["personality"] == "p" * 50_000
    assert len(imported.card_config["tags"]) == 80
    assert imported.card_config["alternate_greetings"] == ["a" * 2000] * 30
    assert CompanionSettingsForm(data=imported.values).is_valid()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "N" * 51}, "Too long: the card's name (51 characters; at most 50 are allowed)."),
        (
            {"description": "d" * 50_001},
            "the card's description (50,001 characters; at most 50,000 are",
        ),
        ({"personality": "p" * 50_001}, "the card's personality (50,001 characters;"),
        ({"scenario": "s" * 50_001}, "the card's scenario (50,001 characters;"),
        ({"mes_example": "m" * 50_001}, "the card's example messages (50,001 characters;"),
        ({"first_mes": "g" * 20_001}, "the card's first message (20,001 characters; at most 20,000"),
        (
            {"alternate_greetings": ["a"] * 51},
            "Too many: the card's alternate greetings (51; at most 50 are allowed).",
        ),
        (
            {"alternate_greetings": ["a" * 20_001]},
            "one of the card's alternate greetings (20,001 characters;",
        ),
        (
            {"tags": [f"t{i}" for i in range(101)]},
            "Too many: the card's tags (101; at most 100 are allowed).",
        ),
    ],
)
def test_text_over_a_limit_refuses_the_card_naming_the_field(fields, message):
    card = v2_card(**fields)
    with pytest.raises(CardRejected) as caught:
        cards.to_companion(
            parse_card_file(json.dumps(card).encode(), max_bytes=MAX),
            max_lengths=max_lengths(),
            extras_max_bytes=EXTRAS_MAX,
        )
    assert caught.value.code in ("too_long", "too_many")
    assert message in caught.value.message
    assert "Nothing was imported" in caught.value.message


def test_nul_characters_and_lone_surrogates_are_removed_everywhere():
    card = v2_card(name="Se\x00ra", character_book={"entries": [{"content": "a\x00b\ud800c"}]})
    parsed = parse_card_file(json.dumps(card).encode(), max_bytes=MAX)
    assert parsed.data["name"] == "Sera"
    assert parsed.data["character_book"]["entries"][0]["content"] == "ab?c"


def test_nan_and_infinity_are_not_json():
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        raw = b'{"spec": "chara_card_v2", "data": {"name": "x", "extensions": {"w": ' + constant + b"}}}"
        with pytest.raises(CardRejected) as caught:
            parse_card_file(raw, max_bytes=MAX)
        assert caught.value.code == "bad_json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {{user}}, I am {{char}}.", "Hi Alice, I am Sera."),
        ("<USER> meets <BOT>", "Alice meets Sera"),
        ("{{ User }} and {{CHAR}}", "Alice and Sera"),
        ("{{original}}\nBe brief.", "\nBe brief."),
        ("no macros", "no macros"),
        ("{{unknown}} stays", "{{unknown}} stays"),
    ],
)
def test_macros_are_filled_in(text, expected):
    assert fill_macros(text, char="Sera", user="Alice") == expected


# --- building ------------------------------------------------------------------------


def test_a_wizard_companion_exports_as_a_v3_card(user):
    companion = make_companion(user, system_prompt="Be kind.")
    card = build_card(companion)
    assert (card["spec"], card["spec_version"]) == ("chara_card_v3", "3.0")
    v2 = build_card(companion, spec=cards.SPEC_V2)
    assert v2["spec"] == "chara_card_v2" and "creation_date" not in v2["data"]
    assert card["data"]["creation_date"] <= card["data"]["modification_date"]
    assert isinstance(card["data"]["creation_date"], int)
    data = card["data"]
    assert data["name"] == "Mika"
    assert data["description"].endswith("\n\nGrew up by the sea.")
    assert data["first_mes"] == "Hey you!"
    assert data["system_prompt"] == "Be kind."
    assert data["alternate_greetings"] == [] and data["tags"] == []
    assert data["extensions"]["companionhub"]["hair_color"] == "pink"
    assert "character_book" not in data
    json.dumps(card)  # plain JSON all the way down


def test_the_png_export_carries_the_card_and_the_picture():
    card = v2_card()
    picture = io.BytesIO()
    Image.new("RGB", (120, 80), (200, 10, 10)).save(picture, format="JPEG")
    raw = build_card_png(card, picture.getvalue())
    with Image.open(io.BytesIO(raw)) as image:
        assert image.format == "PNG"
        assert image.size == (120, 80)
        assert image.getpixel((60, 40))[0] > 150
    chunks = cards.png_text_chunks(raw)
    assert json.loads(base64.b64decode(chunks["chara"])) == card
    assert json.loads(base64.b64decode(chunks["ccv3"])) == {
        **card,
        "spec": "chara_card_v3",
        "spec_version": "3.0",
    }


def test_the_png_export_without_a_picture_is_a_plain_placeholder():
    raw = build_card_png(v2_card(name="Plain"))
    with Image.open(io.BytesIO(raw)) as image:
        assert image.size == (cards.PLACEHOLDER_SIZE, cards.PLACEHOLDER_SIZE)
        assert image.getcolors() == [(cards.PLACEHOLDER_SIZE**2, cards.PLACEHOLDER_COLOR)]
    assert parse_card_file(raw, max_bytes=MAX).data["name"] == "Plain"


# --- the import service ------------------------------------------------------------------


def test_importing_a_png_card_makes_a_companion_with_its_picture(user):
    companion, _ = companion_import_card(user=user, upload=upload(card_png({"chara": b64(v2_card())})))
    companion.refresh_from_db()
    assert companion.owner == user
    assert companion.name == "Seraphina"
    assert companion.greeting.startswith("*Seraphina kneels")
    assert companion.config["card"]["tags"] == ["fantasy", "female", "healer"]
    assert companion.config["temperature"] == 0.8  # the usual defaults are there too
    assert companion.header_image.kind == StoredImage.Kind.HEADER
    assert companion.header_image.width == 32


def test_a_real_world_card_with_a_lorebook_imports(user):
    companion, _ = companion_import_card(
        user=user, upload=upload(json.dumps(v2_card(character_book=LOREBOOK)).encode(), "card.json")
    )
    companion.refresh_from_db()
    assert "character_book" not in companion.config["card"]
    book = companion.card_book
    assert (book.owner, book.name, book.source) == (user, "Eldoria", "card")
    assert list(companion.lorebooks.all()) == [book]
    assert [e.keys for e in book.entries.order_by("uid")] == [["glade", "forest"], ["shadowfang"]]
    assert companion.header_image is None


def test_round_trip_of_a_wizard_companion_keeps_every_field(user):
    original = make_companion(user, system_prompt="Answer in haiku.", hobbies=["music"])
    raw = json.dumps(build_card(original)).encode()
    copy, imported = companion_import_card(user=user, upload=upload(raw, "mika.json"))
    copy.refresh_from_db()
    assert {f: getattr(copy, f) for f in CARD_FIELDS} == {f: getattr(original, f) for f in CARD_FIELDS}
    assert not imported.look_defaulted
    assert "defaults" not in copy.config["card"]


def test_an_edited_stand_in_is_no_longer_a_default(user):
    companion, _ = companion_import_card(user=user, upload=upload(json.dumps(v2_card()).encode(), "c.json"))
    assert "hair_color" in cards.card_prompt_defaults(companion)
    companion.hair_color = "red"
    assert "hair_color" not in cards.card_prompt_defaults(companion)
    assert build_card(companion)["data"]["extensions"]["companionhub"]["hair_color"] == "red"


def test_round_trip_of_an_imported_card_keeps_fields_and_config(user):
    first, _ = companion_import_card(
        user=user,
        upload=upload(card_png({"chara": b64(v2_card(character_book=LOREBOOK, x_tool={"a": 1}))})),
    )
    first.refresh_from_db()
    png = build_card_png(build_card(first))
    second, _ = companion_import_card(user=user, upload=upload(png))
    second.refresh_from_db()
    assert {f: getattr(second, f) for f in CARD_FIELDS} == {f: getattr(first, f) for f in CARD_FIELDS}
    # The export is V3 (read from ``ccv3``), which has group-only greetings: no longer absent.
    assert (second.config["card"]["spec"], second.config["card"]["absent"]) == ("chara_card_v3", ["nickname"])
    ignore = {"spec", "spec_version", "absent"}
    assert {k: v for k, v in second.config["card"].items() if k not in ignore} == {
        k: v for k, v in first.config["card"].items() if k not in ignore
    }
    assert set(second.config["card"]["defaults"]) == set(cards.DEFAULT_LOOK)


def test_an_upload_over_the_image_limit_is_refused_unread(user, settings):
    settings.IMAGE_MAX_BYTES = 1000
    big = upload(b"{" + b" " * 2000 + b"}", "big.json")
    with pytest.raises(CardRejected) as caught:
        companion_import_card(user=user, upload=big)
    assert caught.value.code == "too_large"
    assert big.tell() == 0
    assert not Companion.objects.exists()


def test_a_decompression_bomb_card_is_refused_by_media_and_nothing_is_kept(user, settings, media_root):
    settings.IMAGE_MAX_PIXELS = 1000
    raw = card_png({"chara": b64(v2_card())}, size=(100, 100))
    with pytest.raises(ImageRejected) as caught:
        companion_import_card(user=user, upload=upload(raw))
    assert caught.value.code == "too_many_pixels"
    assert not Companion.objects.exists()
    assert not StoredImage.objects.exists()
    assert not any(p.is_file() for p in media_root.rglob("*"))


def test_a_damaged_picture_is_refused(user):
    raw = card_png({"chara": b64(v2_card())})
    idat = raw.index(b"IDAT")
    damaged = raw[: idat + 4] + b"\0" * 20 + raw[idat + 24 :]
    with pytest.raises(ImageRejected):
        companion_import_card(user=user, upload=upload(damaged))
    assert not Companion.objects.exists()


def test_values_the_wizards_form_refuses_are_a_clear_refusal(user, monkeypatch):
    monkeypatch.setitem(cards.DEFAULT_LOOK, "style", "cubist")
    with pytest.raises(CardRejected) as caught:
        companion_import_card(user=user, upload=upload(json.dumps(v2_card()).encode(), "c.json"))
    assert caught.value.code == "invalid"
    assert caught.value.message.startswith('The card\'s "Style" is not usable:')
    assert not Companion.objects.exists()


def test_a_refusal_is_in_the_active_language_and_its_code_is_not(translated):
    translated("es", {"The file is empty.": "El archivo está vacío."})
    with translation.override("es"), pytest.raises(CardRejected) as caught:
        cards.parse_card_file(b"", max_bytes=1024)
    assert (caught.value.code, caught.value.message) == ("empty", "El archivo está vacío.")
