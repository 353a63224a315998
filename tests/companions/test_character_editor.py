"""The character editor on the settings page: every card field shown, saved and exported whole."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from companions import cards
from companions.limits import CARD_TEXT_MAX_CHARS
from companions.models import Companion
from companions.services import companion_import_card
from lorebooks.models import Lorebook, LoreEntry
from tests.companions.editor_page import form_values
from tests.companions.sillytavern import js_stringify, st_character, st_png, st_v3
from tests.companions.test_cards import b64, card_png

pytestmark = pytest.mark.django_db

# Long text the way cards write it: several paragraphs, Windows line ends, accents, CJK, emoji.
PARAGRAPH = "Ella camina por el bosque — 森の中で歌う 🌿. Zoë's “quiet” voice.\n\n"
DESCRIPTION = (PARAGRAPH * 200)[:9_999] + "."  # 10,000 characters
PERSONALITY = ("gentle, protective, wise; ünïcödé ✨\n" * 150).strip()
SCENARIO = ("{{user}} wakes up in {{char}}'s glade — 夜明け.\r\n" * 120).strip()
EXAMPLES = ("<START>\n{{user}}: Who are you?\n{{char}}: *smiles* A friend. 🌲\n" * 80).strip()


def long_character() -> dict:
    char = st_character(
        description=DESCRIPTION, personality=PERSONALITY, scenario=SCENARIO, mes_example=EXAMPLES
    )
    char["data"]["alternate_greetings"] = ["*She hums.*", "Oh! You're awake. ☀️"]
    return char


def v3_card(char: dict) -> dict:
    card = st_v3(char)
    card["data"] = {**card["data"], "nickname": "Sera"}
    return card


def import_raw(user, raw: bytes, name: str) -> Companion:
    companion, _ = companion_import_card(user=user, upload=SimpleUploadedFile(name, raw))
    return companion


def settings_url(companion: Companion) -> str:
    return reverse("companions:settings", args=[companion.pk])


def save_unchanged(client, companion: Companion, **changes: list[str]):
    """Post the settings form as the page shows it (with ``changes``), as a browser would."""
    page = client.get(settings_url(companion))
    assert page.status_code == 200
    data = form_values(page.content.decode())
    data.update(changes)
    return client.post(settings_url(companion), data)


def exported(client, companion: Companion, spec: str = "v3") -> dict:
    params = {"spec": "v2"} if spec == "v2" else {}
    response = client.get(reverse("companions:card_export_json", args=[companion.pk]), params)
    assert response.status_code == 200
    return json.loads(response.content)["data"]


def exported_png(client, companion: Companion) -> tuple[dict, dict]:
    response = client.get(reverse("companions:card_export_png", args=[companion.pk]))
    chunks = cards.png_text_chunks(response.content)
    v2, v3 = (json.loads(base64.b64decode(chunks[k])) for k in ("chara", "ccv3"))
    return v2["data"], v3["data"]


CARD_FIELDS = (
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "tags",
    "creator",
    "character_version",
    "alternate_greetings",
    "group_only_greetings",
)


def assert_fields_as_written(data: dict, card: dict) -> None:
    for name in (*CARD_FIELDS, "nickname"):
        if name in card["data"]:
            assert data[name] == card["data"][name], name


@pytest.mark.parametrize("kind", ["v2.json", "v3.json", "v2.png", "v3.png"])
def test_long_unicode_text_survives_import_an_unchanged_save_and_export(client, user, kind):
    char = long_character()
    card = v3_card(char) if kind.startswith("v3") else char
    if kind == "v2.json":
        raw = js_stringify(card).encode()
    elif kind == "v3.json":
        raw = json.dumps(card, ensure_ascii=False, indent=2).encode()
    elif kind == "v2.png":
        raw = st_png(card)
    else:
        raw = card_png({"ccv3": b64(card)})
    companion = import_raw(user, raw, f"sera.{kind.split('.')[1]}")
    assert len(DESCRIPTION) == 10_000
    assert companion.backstory == DESCRIPTION
    assert companion.config["card"]["scenario"] == SCENARIO.replace("\r\n", "\n")
    client.force_login(user)

    response = save_unchanged(client, companion)
    assert response.status_code == 302, response.context and response.context["form"].errors

    companion.refresh_from_db()
    assert companion.backstory == DESCRIPTION
    assert companion.config["card"]["personality"] == PERSONALITY
    assert companion.config["card"]["mes_example"] == EXAMPLES
    assert_fields_as_written(exported(client, companion), card)
    v2, v3 = exported_png(client, companion)
    assert_fields_as_written(v2, card)
    assert_fields_as_written(v3, card)


def test_every_field_round_trips_through_the_editor(client, user):
    companion = import_raw(user, js_stringify(long_character()).encode(), "sera.json")
    book = companion.card_book
    client.force_login(user)
    edits = {
        "name": ["Sera"],
        "backstory": ["A new description —\r\nwith two lines ✨" + "d" * 12_000],
        "card-personality": ["curious\r\nbrave"],
        "card-scenario": ["A rainy market in 京都."],
        "greeting": ["Hello, {{user}}!"],
        "card-alternate_greetings": ["First alt", "", "Second alt 🌙"],
        "card-group_only_greetings": ["Hello, everyone."],
        "card-mes_example": ["<START>\r\n{{char}}: Hm."],
        "system_prompt": ["Write in second person."],
        "card-post_history_instructions": ["Keep replies short."],
        "card-creator_notes": ["Try the rain scene."],
        "card-tags": ["rain\r\nmarket, night\r\n"],
        "card-creator": ["me"],
        "card-character_version": ["2.0"],
        "card-nickname": ["Rain"],
    }
    response = save_unchanged(client, companion, **edits)
    assert response.status_code == 302, response.context and response.context["form"].errors

    # Reloaded, the page shows every edit.
    shown = form_values(client.get(settings_url(companion)).content.decode())
    assert shown["card-alternate_greetings"] == ["First alt", "Second alt 🌙", ""]
    assert shown["card-tags"] == ["rain\r\nmarket, night"]
    assert shown["card-nickname"] == ["Rain"]
    assert shown["card-personality"] == ["curious\r\nbrave"]

    data = exported(client, companion)
    assert data["name"] == "Sera"
    assert data["description"] == "A new description —\nwith two lines ✨" + "d" * 12_000
    assert data["personality"] == "curious\nbrave"
    assert data["scenario"] == "A rainy market in 京都."
    assert data["first_mes"] == "Hello, {{user}}!"
    assert data["alternate_greetings"] == ["First alt", "Second alt 🌙"]
    assert data["group_only_greetings"] == ["Hello, everyone."]
    assert data["mes_example"] == "<START>\n{{char}}: Hm."
    assert data["system_prompt"] == "Write in second person."
    assert data["post_history_instructions"] == "Keep replies short."
    assert data["creator_notes"] == "Try the rain scene."
    assert data["tags"] == ["rain", "market, night"]
    assert (data["creator"], data["character_version"], data["nickname"]) == ("me", "2.0", "Rain")
    assert data["character_book"]["entries"][0]["keys"] == ["glade", "forest"]
    companion.refresh_from_db()
    assert companion.card_book == book  # the book stays the companion's


def test_a_companion_made_here_gets_card_text_from_the_editor(client, user, companion):
    client.force_login(user)
    response = save_unchanged(client, companion)
    assert response.status_code == 302
    companion.refresh_from_db()
    assert "card" not in companion.config  # nothing to keep yet
    response = save_unchanged(client, companion, **{"card-scenario": ["On a train."]})
    assert response.status_code == 302
    companion.refresh_from_db()
    assert companion.config["card"]["scenario"] == "On a train."
    assert exported(client, companion)["scenario"] == "On a train."


def test_a_post_without_the_card_fields_keeps_the_card_text(client, user):
    companion = import_raw(user, js_stringify(long_character()).encode(), "sera.json")
    client.force_login(user)
    data = {k: v for k, v in form_values(client.get(settings_url(companion)).content.decode()).items()}
    data = {k: v for k, v in data.items() if not k.startswith("card-")}
    assert client.post(settings_url(companion), data).status_code == 302
    companion.refresh_from_db()
    assert companion.config["card"]["personality"] == PERSONALITY


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("backstory", "d" * 50_001, "Ensure this value has at most 50000 characters (it has 50001)."),
        ("card-personality", "p" * 50_001, "Ensure this value has at most 50000 characters (it has 50001)."),
        ("card-scenario", "s" * 50_001, "Ensure this value has at most 50000 characters (it has 50001)."),
        ("card-mes_example", "m" * 50_001, "Ensure this value has at most 50000 characters (it has 50001)."),
        ("greeting", "g" * 20_001, "Ensure this value has at most 20000 characters (it has 20001)."),
        ("card-tags", "t" * 101, "Number 1 has 101 characters; at most 100 are allowed. Nothing was saved."),
    ],
)
def test_text_over_a_limit_is_an_error_and_nothing_is_cut_or_lost(client, user, field, value, error):
    companion = import_raw(user, js_stringify(long_character()).encode(), "sera.json")
    before = (companion.backstory, companion.greeting, dict(companion.config["card"]))
    client.force_login(user)
    response = save_unchanged(client, companion, **{field: [value]})
    assert response.status_code == 200
    html = response.content.decode()
    assert error in html
    assert value in html  # what was typed is still on the page, whole
    companion.refresh_from_db()
    assert (companion.backstory, companion.greeting, companion.config["card"]) == before


def test_too_many_greetings_is_an_error(client, user, companion):
    client.force_login(user)
    response = save_unchanged(client, companion, **{"card-alternate_greetings": [f"g{i}" for i in range(51)]})
    assert response.status_code == 200
    assert "At most 50; this has 51. Nothing was saved." in response.content.decode()
    companion.refresh_from_db()
    assert "card" not in companion.config


def test_the_editor_shows_every_section_and_the_limits(client, user):
    companion = import_raw(user, js_stringify(long_character()).encode(), "sera.json")
    client.force_login(user)
    html = client.get(settings_url(companion)).content.decode()
    for section in (
        "identity",
        "personality",
        "greetings",
        "examples",
        "prompts",
        "notes",
        "lorebook",
        "model",
    ):
        assert f'id="{section}"' in html and f'href="#{section}"' in html, section
    assert "Up to 50,000 characters." in html
    assert 'data-max-chars="50000"' in html
    assert "maxlength" not in html.split('name="card-personality"')[1].split(">")[0]
    assert "*She hums.*" in html  # the card's alternate greetings, editable
    assert 'data-testid="card-book-entry"' in html
    entry = companion.card_book.entries.first()
    assert reverse("lorebooks:entry_edit", args=[companion.card_book_id, entry.pk]) in html


def test_limits_on_the_model_are_the_card_limits():
    for card_name, column in cards.COLUMN_FOR.items():
        assert Companion._meta.get_field(column).max_length == CARD_TEXT_MAX_CHARS[card_name]


# --- the companion's own lorebook ---------------------------------------------------------


def test_an_entry_edited_from_the_settings_page_goes_back_there(client, user):
    companion = import_raw(user, st_png(st_character()), "sera.png")
    entry = companion.card_book.entries.first()
    client.force_login(user)
    back = settings_url(companion) + "#lorebook"
    url = reverse("lorebooks:entry_edit", args=[companion.card_book_id, entry.pk])
    page = client.get(url, {"next": back})
    assert f'name="next" value="{back}"' in page.content.decode()
    data = form_values(page.content.decode(), form_marker="method")
    data.update(content=["The glade is hidden behind a waterfall."], order=["7"])
    response = client.post(url, data)
    assert response.status_code == 302 and response["Location"] == back
    html = client.get(settings_url(companion)).content.decode()
    assert "The glade is hidden behind a waterfall." in html
    data = exported(client, companion)
    assert data["character_book"]["entries"][0]["content"] == "The glade is hidden behind a waterfall."


def test_an_entry_page_never_sends_to_another_site(client, user):
    companion = import_raw(user, st_png(st_character()), "sera.png")
    entry = companion.card_book.entries.first()
    client.force_login(user)
    url = reverse("lorebooks:entry_edit", args=[companion.card_book_id, entry.pk])
    data = form_values(client.get(url).content.decode(), form_marker="method")
    response = client.post(url, {**data, "next": ["https://evil.example/"]})
    assert response["Location"] == reverse("lorebooks:detail", args=[companion.card_book_id])


def test_a_companion_without_a_book_can_start_one(client, user, companion):
    client.force_login(user)
    assert b'data-testid="start-card-book"' in client.get(settings_url(companion)).content
    response = client.post(reverse("companions:start_card_book", args=[companion.pk]))
    assert response["Location"] == settings_url(companion) + "#lorebook"
    companion.refresh_from_db()
    book = companion.card_book
    assert book is not None and book.owner == user
    assert list(companion.lorebooks.all()) == [book]
    client.post(reverse("companions:start_card_book", args=[companion.pk]))
    assert Lorebook.objects.filter(owner=user).count() == 1  # a second click makes no second book
    LoreEntry.objects.create(lorebook=book, uid=0, keys=["train"], content="A night train.")
    assert exported(client, companion)["character_book"]["entries"][0]["content"] == "A night train."


# --- ownership ----------------------------------------------------------------------------


def test_another_user_can_neither_see_nor_edit_the_character(client, user, other_user):
    companion = import_raw(user, js_stringify(long_character()).encode(), "sera.json")
    client.force_login(user)
    data = form_values(client.get(settings_url(companion)).content.decode())
    client.force_login(other_user)
    assert client.get(settings_url(companion)).status_code == 404
    data["card-personality"] = ["stolen"]
    assert client.post(settings_url(companion), data).status_code == 404
    assert client.post(reverse("companions:start_card_book", args=[companion.pk])).status_code == 404
    entry = companion.card_book.entries.first()
    edit = reverse("lorebooks:entry_edit", args=[companion.card_book_id, entry.pk])
    assert client.get(edit).status_code == 404
    companion.refresh_from_db()
    assert companion.config["card"]["personality"] == PERSONALITY


def test_an_entry_deleted_from_the_settings_page_goes_back_there(client, user):
    companion = import_raw(user, st_png(st_character()), "sera.png")
    entry = companion.card_book.entries.first()
    client.force_login(user)
    back = settings_url(companion) + "#lorebook"
    url = reverse("lorebooks:entry_delete", args=[companion.card_book_id, entry.pk])
    assert f'action="{url}"' in client.get(settings_url(companion)).content.decode()
    response = client.post(url, {"next": back})
    assert response["Location"] == back
    assert not LoreEntry.objects.filter(pk=entry.pk).exists()


def test_card_text_in_the_editor_is_escaped(client, user):
    payload = "<script>alert(1)</script>"
    char = st_character(alternate_greetings=[payload], personality=payload)
    companion = import_raw(user, js_stringify(char).encode(), "sera.json")
    entry = companion.card_book.entries.first()
    entry.content = entry.comment = payload
    entry.save()
    client.force_login(user)
    html = client.get(settings_url(companion)).content.decode()
    assert payload not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3
