"""Card pages: import form, JSON/PNG/CHARX export, owner-only access."""

import base64
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from companions import cards
from companions.models import Companion
from companions.services import companion_set_header
from tests.companions.factories import make_companion, png_bytes
from tests.companions.test_cards import LOREBOOK, b64, card_png, v2_card

IMPORT = reverse("companions:card_import")
EXPORTS = ["companions:card_export_json", "companions:card_export_png", "companions:card_export_charx"]


def post_card(client, raw: bytes, name="card.png"):
    return client.post(IMPORT, {"card": SimpleUploadedFile(name, raw)})


# --- import -------------------------------------------------------------------------


def test_the_import_page_shows_a_file_form_with_csrf(client, user):
    client.force_login(user)
    page = client.get(IMPORT)
    assert page.status_code == 200
    assert b'type="file"' in page.content
    assert b'enctype="multipart/form-data"' in page.content
    assert b"csrfmiddlewaretoken" in page.content


def test_the_list_links_to_the_import_page(client, user):
    client.force_login(user)
    assert IMPORT.encode() in client.get(reverse("companions:list")).content


def test_import_needs_login(client, db):
    for response in (client.get(IMPORT), post_card(client, json.dumps(v2_card()).encode(), "c.json")):
        assert response.status_code == 302
        assert "login" in response["Location"]
    assert not Companion.objects.exists()


def test_import_needs_the_csrf_token(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert post_card(client, json.dumps(v2_card()).encode(), "c.json").status_code == 403
    assert not Companion.objects.exists()


def test_importing_a_png_card_opens_the_chat_with_the_greeting(client, user):
    client.force_login(user)
    response = post_card(client, card_png({"chara": b64(v2_card(character_book=LOREBOOK))}))
    companion = Companion.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:page", args=[companion.pk])
    assert companion.owner == user
    assert companion.header_image is not None
    chat = client.get(response["Location"])
    assert b"Seraphina is imported" in chat.content
    assert b"You&#x27;re safe now, Alice." in chat.content  # the greeting, {{user}} filled in
    assert b"set it in Settings" in chat.content


def test_importing_a_card_over_a_limit_names_the_field_and_imports_nothing(client, user):
    client.force_login(user)
    card = v2_card(description="x" * 50_001)
    response = post_card(client, json.dumps(card).encode(), "long.json")
    assert response.status_code == 200
    assert (
        b"Too long: the card&#x27;s description (50,001 characters; at most 50,000 are allowed)."
        in response.content
    )
    assert not Companion.objects.exists()


def test_a_long_card_imports_whole_without_a_warning(client, user):
    client.force_login(user)
    card = v2_card(description="x" * 10_000, first_mes="y" * 1500)
    response = post_card(client, json.dumps(card).encode(), "long.json")
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert b"shortened" not in page.content
    companion = Companion.objects.get()
    assert (len(companion.backstory), len(companion.greeting)) == (10_000, 1500)


def test_a_posted_owner_is_ignored(client, user, other_user):
    client.force_login(user)
    client.post(
        IMPORT, {"card": SimpleUploadedFile("c.json", json.dumps(v2_card()).encode()), "owner": other_user.pk}
    )
    assert Companion.objects.get().owner == user


@pytest.mark.parametrize(
    ("raw", "name", "message"),
    [
        (
            b"hello, I am a text file",
            "notes.txt",
            b"neither a PNG character card, a JSON character card nor a CHARX",
        ),
        (png_bytes(), "plain.png", b"no character card inside"),
        (card_png({"chara": "%%%"}), "bad.png", b"not valid base64"),
        (b'{"spec": "chara_card_v2", "data": ', "bad.json", b"not valid JSON"),
        (
            json.dumps({"spec": "chara_card_v2", "data": {"description": "?"}}).encode(),
            "c.json",
            b"no character name",
        ),
    ],
    ids=["not-png-or-json", "no-chunk", "bad-base64", "bad-json", "no-name"],
)
def test_bad_files_show_the_reason_and_create_nothing(client, user, raw, name, message):
    client.force_login(user)
    response = post_card(client, raw, name)
    assert response.status_code == 200
    assert message in response.content
    assert not Companion.objects.exists()


def test_a_huge_file_is_refused(client, user, settings):
    settings.IMAGE_MAX_BYTES = 2048
    client.force_login(user)
    response = post_card(client, json.dumps(v2_card(description="y" * 4000)).encode(), "big.json")
    assert response.status_code == 200
    assert b"larger than" in response.content
    assert not Companion.objects.exists()


def test_a_body_over_the_upload_limit_is_refused_before_parsing(client, user, settings):
    settings.IMAGE_MAX_BYTES = 1024
    client.force_login(user)
    response = post_card(client, b"{" + b" " * 400_000 + b"}", "huge.json")
    assert response.status_code == 413
    assert not Companion.objects.exists()


def test_a_picture_with_too_many_pixels_is_refused(client, user, settings):
    settings.IMAGE_MAX_PIXELS = 1000
    client.force_login(user)
    response = post_card(client, card_png({"chara": b64(v2_card())}, size=(200, 200)))
    assert response.status_code == 200
    assert b"too many pixels" in response.content or b"megapixels" in response.content
    assert not Companion.objects.exists()


def test_an_empty_post_asks_for_a_file(client, user):
    client.force_login(user)
    response = client.post(IMPORT, {})
    assert response.status_code == 200
    assert b"This field is required" in response.content


def test_imported_text_is_escaped_on_every_page(client, user):
    payload = "<script>alert(1)</script>"
    client.force_login(user)
    response = post_card(client, json.dumps(v2_card(name=payload[:50], first_mes=payload)).encode(), "x.json")
    companion = Companion.objects.get()
    for url in (
        response["Location"],
        reverse("companions:list"),
        reverse("companions:detail", args=[companion.pk]),
        reverse("companions:settings", args=[companion.pk]),
    ):
        content = client.get(url).content
        assert b"<script>alert(1)" not in content, url
        assert b"&lt;script&gt;" in content, url


def test_imports_count_against_the_companion_creation_limit(client, user, rate_limits):
    client.force_login(user)
    raw = json.dumps(v2_card()).encode()
    assert post_card(client, raw, "a.json").status_code == 302
    refused = post_card(client, raw, "b.json")
    assert refused.status_code == 429
    assert "Retry-After" in refused
    assert Companion.objects.count() == 1
    assert client.get(IMPORT).status_code == 200  # only posts count


# --- export ---------------------------------------------------------------------------


def test_the_settings_page_links_every_export(client, user, companion):
    client.force_login(user)
    page = client.get(reverse("companions:settings", args=[companion.pk]))
    for name in EXPORTS:
        assert reverse(name, args=[companion.pk]).encode() in page.content
    assert b"?spec=v2" in page.content
    for label in (b"Export card (JSON, V3)", b"Export card (PNG)", b"Export card (CHARX)"):
        assert label in page.content


def test_the_json_export_is_a_v3_card_download(client, user, companion):
    client.force_login(user)
    response = client.get(reverse("companions:card_export_json", args=[companion.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == 'attachment; filename="mika.json"'
    card = json.loads(response.content)
    assert (card["spec"], card["spec_version"]) == ("chara_card_v3", "3.0")
    assert card["data"]["name"] == "Mika"
    assert card["data"]["group_only_greetings"] == []


def test_the_json_export_is_v2_on_request(client, user, companion):
    client.force_login(user)
    response = client.get(reverse("companions:card_export_json", args=[companion.pk]), {"spec": "v2"})
    card = json.loads(response.content)
    assert (card["spec"], card["spec_version"]) == ("chara_card_v2", "2.0")
    assert card["data"]["name"] == "Mika"


def test_the_png_export_embeds_the_card_in_the_header_picture(client, user, companion):
    companion_set_header(companion=companion, data=png_bytes(90, 60, (250, 0, 0)))
    client.force_login(user)
    response = client.get(reverse("companions:card_export_png", args=[companion.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'attachment; filename="mika.png"'
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (90, 60)
        assert image.getpixel((45, 30))[0] > 200
    chunks = cards.png_text_chunks(response.content)
    v2 = json.loads(base64.b64decode(chunks["chara"]))
    v3 = json.loads(base64.b64decode(chunks["ccv3"]))
    assert (v2["spec"], v3["spec"]) == ("chara_card_v2", "chara_card_v3")
    assert v2["data"] == v3["data"]
    assert v2["data"]["first_mes"] == "Hey you!"


def test_the_png_export_without_a_picture_uses_a_placeholder(client, user, companion):
    client.force_login(user)
    response = client.get(reverse("companions:card_export_png", args=[companion.pk]))
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (cards.PLACEHOLDER_SIZE, cards.PLACEHOLDER_SIZE)


def test_a_name_without_safe_characters_gets_a_plain_file_name(client, user):
    companion = make_companion(user, name='"; ../..')
    client.force_login(user)
    response = client.get(reverse("companions:card_export_json", args=[companion.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="companion.json"'


@pytest.mark.parametrize("name", EXPORTS)
def test_another_users_companion_is_404(client, other_user, companion, name):
    client.force_login(other_user)
    assert client.get(reverse(name, args=[companion.pk])).status_code == 404


@pytest.mark.parametrize("name", EXPORTS)
def test_export_needs_login(client, companion, name):
    response = client.get(reverse(name, args=[companion.pk]))
    assert response.status_code == 302
    assert "login" in response["Location"]


@pytest.mark.parametrize("name", EXPORTS)
def test_export_is_get_only(client, user, companion, name):
    client.force_login(user)
    assert client.post(reverse(name, args=[companion.pk])).status_code == 405


def test_an_exported_png_imports_back_through_the_page(client, user, companion):
    client.force_login(user)
    exported = client.get(reverse("companions:card_export_png", args=[companion.pk])).content
    assert post_card(client, exported, "mika.png").status_code == 302
    copy = Companion.objects.exclude(pk=companion.pk).get()
    assert (copy.name, copy.backstory, copy.hair_color, copy.personality_traits) == (
        companion.name,
        companion.backstory,
        companion.hair_color,
        companion.personality_traits,
    )


def test_a_missing_picture_file_exports_the_placeholder(client, user, companion, media_root):
    image = companion_set_header(companion=companion, data=png_bytes(90, 60))
    (media_root / image.file.name).unlink()
    client.force_login(user)
    response = client.get(reverse("companions:card_export_png", args=[companion.pk]))
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as picture:
        assert picture.size == (cards.PLACEHOLDER_SIZE, cards.PLACEHOLDER_SIZE)
