"""Lorebooks meet companions and chats: attaching, a card's book, the card import page, the
migration of books kept in cards."""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from companions import cards
from companions.models import Companion
from companions.services import companion_import_card
from lorebooks import formats
from lorebooks.models import Lorebook
from tests.chat.factories import make_chat, make_group
from tests.companions.factories import make_companion
from tests.companions.sillytavern import LOREBOOK
from tests.companions.test_cards import v2_card
from tests.companions.test_pages import settings_data
from tests.lorebooks.factories import make_book, make_entry
from tests.lorebooks.samples import card_book, world_info

pytestmark = pytest.mark.django_db


def _upload(data: dict, name: str = "card.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, json.dumps(data).encode(), content_type="application/json")


def test_companion_settings_attach_only_own_books(client, user, other_user):
    companion = make_companion(user)
    mine, theirs = make_book(user, "Mine"), make_book(other_user, "Theirs")
    client.force_login(user)
    url = reverse("companions:settings", args=[companion.pk])
    page = client.get(url).content.decode()
    assert "Mine" in page and "Theirs" not in page
    response = client.post(url, settings_data(companion, **{"lore-lorebooks": [mine.pk]}))
    assert response.status_code == 302
    assert list(companion.lorebooks.all()) == [mine]
    page = client.post(url, settings_data(companion, **{"lore-lorebooks": [theirs.pk]}))
    assert "Select a valid choice" in page.content.decode()
    assert list(companion.lorebooks.all()) == [mine]


def test_a_chat_and_a_group_get_their_own_books(client, user, other_user):
    chat = make_chat(make_companion(user))
    group = make_group(user, "Ann", "Bo")
    mine, theirs = make_book(user, "Mine"), make_book(other_user, "Theirs")
    client.force_login(user)
    assert (
        reverse("chat:lorebooks", args=[chat.pk])
        in client.get(reverse("chat:conversation", args=[chat.pk])).content.decode()
    )
    for conversation in (chat, group):
        url = reverse("chat:lorebooks", args=[conversation.pk])
        assert "Mine" in client.get(url).content.decode()
        assert client.post(url, {"lorebooks": [mine.pk]}).status_code == 302
        assert list(conversation.lorebooks.all()) == [mine]
        page = client.post(url, {"lorebooks": [theirs.pk]})
        assert "Select a valid choice" in page.content.decode()
        client.post(url, {})
        assert not conversation.lorebooks.exists()


def test_another_users_chat_lorebooks_page_is_404(client, user, other_user):
    chat = make_chat(make_companion(other_user))
    client.force_login(user)
    url = reverse("chat:lorebooks", args=[chat.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"lorebooks": []}).status_code == 404


def test_the_services_refuse_another_users_book(user, other_user):
    from chat.conversations import conversation_set_lorebooks
    from companionhub.errors import AppError
    from companions.services import companion_set_lorebooks

    theirs = make_book(other_user)
    with pytest.raises(AppError):
        companion_set_lorebooks(companion=make_companion(user), lorebooks=[theirs])
    with pytest.raises(AppError):
        conversation_set_lorebooks(conversation=make_chat(make_companion(user, name="B")), lorebooks=[theirs])


def test_a_card_book_becomes_an_attached_lorebook_and_an_edit_is_exported(user):
    companion, _imported = companion_import_card(
        user=user, upload=_upload(v2_card(character_book=card_book()))
    )
    companion.refresh_from_db()
    book = companion.card_book
    assert book.owner == user and list(companion.lorebooks.all()) == [book]
    assert cards.build_card(companion)["data"]["character_book"] == card_book()
    entry = book.entries.get(uid=9)
    entry.content = "The harbour froze once."
    entry.save()
    exported = cards.build_card(companion)["data"]["character_book"]
    assert exported["entries"][2]["content"] == "The harbour froze once."
    assert exported["entries"][2]["x_entry_field"] == [1, 2]


def test_a_companion_whose_card_book_was_deleted_exports_without_one(user):
    companion, _ = companion_import_card(user=user, upload=_upload(v2_card(character_book=LOREBOOK)))
    companion.card_book.delete()
    companion = Companion.objects.get(pk=companion.pk)
    assert "character_book" not in cards.build_card(companion)["data"]


def test_a_world_info_file_on_the_card_page_is_named_and_offered_as_a_lorebook(client, user):
    client.force_login(user)
    page = client.post(reverse("companions:card_import"), {"card": _upload(world_info(), "eldoria.json")})
    html = page.content.decode()
    assert "This is a lorebook (World Info) file, not a character card." in html
    assert "The card has no character name." not in html
    assert 'data-testid="import-as-lorebook"' in html and reverse("lorebooks:import") in html
    assert not Companion.objects.exists()
    response = client.post(reverse("lorebooks:import"), {"file": _upload(world_info(), "eldoria.json")})
    assert response.status_code == 302 and Lorebook.objects.get(owner=user).entries.count() == 5


def test_a_bare_card_book_on_the_card_page_is_named_too(client, user):
    client.force_login(user)
    files = [_upload(card_book(), "book.json"), _upload(v2_card(), "card.json")]
    page = client.post(reverse("companions:card_import"), {"card": files})
    html = page.content.decode()
    assert "not a character card" in html and reverse("lorebooks:import") in html
    assert Companion.objects.count() == 1


def test_the_migration_moves_card_books_into_lorebooks_and_back(user):
    moved = make_companion(
        user, name="Sera", config={"card": {"character_book": card_book(), "spec": "chara_card_v2"}}
    )
    bad_book = {"entries": [{"keys": ["/(a)\\1/"], "content": "x"}]}
    kept = make_companion(user, name="Kept", config={"card": {"character_book": bad_book}})
    plain = make_companion(user, name="Plain", config={"card": {"spec": "chara_card_v2"}})
    migration = importlib.import_module("companions.migrations.0007_card_books_to_lorebooks")
    editor = SimpleNamespace(connection=connection)
    migration.books_to_rows(apps, editor)
    moved.refresh_from_db()
    assert moved.config["card"] == {"spec": "chara_card_v2"}
    assert list(moved.lorebooks.all()) == [moved.card_book]
    assert cards.build_card(moved)["data"]["character_book"] == card_book()
    kept.refresh_from_db()
    assert kept.card_book is None and kept.config["card"]["character_book"] == bad_book
    plain.refresh_from_db()
    assert plain.card_book is None
    migration.books_to_rows(apps, editor)  # a second run changes nothing
    assert Lorebook.objects.count() == 1
    migration.rows_to_books(apps, editor)
    moved.refresh_from_db()
    assert moved.card_book is None and moved.config["card"]["character_book"] == card_book()
    assert not Lorebook.objects.exists()


def test_scan_books_of_an_attached_book(user):
    from lorebooks.selectors import scan_books

    book = make_book(user)
    make_entry(book, 0, keys=["/shadow/i"])
    companion = make_companion(user)
    companion.lorebooks.add(book)
    ids = list(companion.lorebooks.values_list("pk", flat=True))
    assert scan_books(user.pk, ids)[0].entries[0].keys == ("/shadow/i",)
    assert formats.regex_key("/shadow/i") == ("shadow", "i")
