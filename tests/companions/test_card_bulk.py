"""Several cards at once: the import page's per-file report, and the "export all" zip."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from companionhub import pagecache
from companions import cards
from companions.forms import CARD_IMPORT_MAX_FILES
from companions.models import Companion
from tests.companions.factories import make_companion, png_bytes
from tests.companions.sillytavern import st_character, st_png
from tests.companions.test_cards import v2_card
from tests.companions.test_charx import make_charx

pytestmark = pytest.mark.django_db

IMPORT = reverse("companions:card_import")
EXPORT_ALL = reverse("companions:cards_export_all")


def files(*items: tuple[str, bytes]) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(name, raw) for name, raw in items]


def test_several_cards_of_every_kind_are_imported_and_reported(client, user):
    client.force_login(user)
    response = client.post(
        IMPORT,
        {
            "card": files(
                ("sera.png", st_png(st_character())),
                ("ann.json", json.dumps(v2_card(name="Ann")).encode()),
                ("bo.charx", make_charx(card={"spec": "chara_card_v3", "data": {"name": "Bo"}})),
            )
        },
    )
    assert response.status_code == 200
    names = sorted(Companion.objects.filter(owner=user).values_list("name", flat=True))
    assert names == ["Ann", "Bo", "Seraphina"]
    page = response.content.decode()
    for companion in Companion.objects.all():
        assert reverse("chat:page", args=[companion.pk]) in page
    assert page.count("imported as") == 3
    assert "The card does not describe a look we can use" in page


def test_a_refused_file_is_reported_and_the_others_are_imported(client, user):
    client.force_login(user)
    response = client.post(
        IMPORT,
        {
            "card": files(
                ("ok.json", json.dumps(v2_card(name="Ann")).encode()),
                ("plain.png", png_bytes()),
                ("bomb.charx", make_charx({"bomb.bin": b"\0" * (4 * 1024 * 1024)})),
            )
        },
    )
    page = response.content.decode()
    assert list(Companion.objects.values_list("name", flat=True)) == ["Ann"]
    assert "<strong>plain.png</strong>:" in page and "no character card inside" in page
    assert "<strong>bomb.charx</strong>:" in page and "zip bomb" in page
    assert page.count("not imported.") == 2


def test_a_file_name_is_escaped_in_the_report(client, user):
    client.force_login(user)
    response = client.post(IMPORT, {"card": files(("<b onclick=x>.png", b"x"), ("b.png", b"y"))})
    assert b"<b onclick=x>" not in response.content
    assert b"&lt;b onclick=x&gt;.png" in response.content


def test_too_many_files_are_refused_and_none_imported(client, user):
    client.force_login(user)
    raw = json.dumps(v2_card()).encode()
    response = client.post(
        IMPORT, {"card": files(*((f"{i}.json", raw) for i in range(CARD_IMPORT_MAX_FILES + 1)))}
    )
    assert response.status_code == 200
    assert f"Choose at most {CARD_IMPORT_MAX_FILES} files at once.".encode() in response.content
    assert not Companion.objects.exists()


def test_each_file_counts_against_the_creation_limit(client, user, rate_limits):
    client.force_login(user)
    raw = json.dumps(v2_card()).encode()
    response = client.post(IMPORT, {"card": files(("a.json", raw), ("b.json", raw))})
    assert response.status_code == 200
    assert Companion.objects.count() == 1
    assert b"<strong>b.json</strong>:" in response.content
    assert b"many companions in a short time" in response.content


def test_a_single_file_still_opens_its_chat_and_says_what_was_not_kept(client, user):
    client.force_login(user)
    response = client.post(IMPORT, {"card": files(("s.charx", make_charx()))})
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:page", args=[Companion.objects.get().pk])
    page = client.get(response["Location"]).content.decode()
    assert "1 of the card&#x27;s other pictures or sounds (sprites, backgrounds) is not kept" in page


# --- export all ---------------------------------------------------------------------------------


def read_zip(response) -> dict[str, bytes]:
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_export_all_is_a_zip_of_the_users_cards_only(client, user, other_user):
    make_companion(user, name="Mika")
    make_companion(user, name="Mika")
    make_companion(user, name="Ren")
    make_companion(other_user, name="Stranger")
    client.force_login(user)
    response = client.get(EXPORT_ALL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert 'filename="companion-cards.zip"' in response["Content-Disposition"]
    entries = read_zip(response)
    assert sorted(entries) == ["mika-2.png", "mika.png", "ren.png"]
    for raw in entries.values():
        chunks = cards.png_text_chunks(raw)
        assert json.loads(base64.b64decode(chunks["ccv3"]))["spec"] == "chara_card_v3"
        assert json.loads(base64.b64decode(chunks["chara"]))["spec"] == "chara_card_v2"


def test_export_all_with_no_companions_is_an_empty_zip(client, user):
    client.force_login(user)
    assert read_zip(client.get(EXPORT_ALL)) == {}


def test_export_all_needs_login_and_is_get_only(client, user):
    assert "login" in client.get(EXPORT_ALL)["Location"]
    client.force_login(user)
    assert client.post(EXPORT_ALL).status_code == 405


def test_the_list_links_export_all_when_there_are_companions(client, user):
    client.force_login(user)
    assert EXPORT_ALL.encode() not in client.get(reverse("companions:list")).content
    make_companion(user)
    pagecache.user_pages_changed(user.pk)  # the list is cached; services say when it changes
    assert EXPORT_ALL.encode() in client.get(reverse("companions:list")).content
