"""The lorebook pages: owner only, POST for changes, clear errors, exports."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from lorebooks.models import Lorebook, LoreEntry
from tests.lorebooks.factories import make_book, make_entry
from tests.lorebooks.samples import card_book, world_info

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def _file(data, name="book.json") -> SimpleUploadedFile:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return SimpleUploadedFile(name, body, content_type="application/json")


def test_the_list_shows_the_users_books_counts_and_companions(signed_in, user, other_user):
    from tests.companions.factories import make_companion

    book = make_book(user, "Mine")
    make_entry(book, 0)
    make_companion(user, name="Mika").lorebooks.add(book)
    make_book(other_user, "Theirs")
    page = signed_in.get(reverse("lorebooks:list"))
    body = page.content.decode()
    assert "Mine" in body and "Mika" in body and "1 entry" in body and "Theirs" not in body
    assert reverse("lorebooks:list") in signed_in.get(reverse("home")).content.decode()


def test_create_and_edit_settings(signed_in, user):
    response = signed_in.post(
        reverse("lorebooks:create"),
        {"name": "World", "scan_depth": 4, "token_budget": 0, "recursion_depth": 3},
    )
    book = Lorebook.objects.get(owner=user)
    assert response.url == reverse("lorebooks:detail", args=[book.pk])
    data = {"name": "World 2", "scan_depth": 5000, "token_budget": 0, "recursion_depth": 3}
    page = signed_in.post(reverse("lorebooks:detail", args=[book.pk]), data)
    assert "At most 1000 messages." in page.content.decode()
    signed_in.post(
        reverse("lorebooks:detail", args=[book.pk]), {**data, "scan_depth": 2, "case_sensitive": "on"}
    )
    book.refresh_from_db()
    assert (book.name, book.scan_depth, book.case_sensitive) == ("World 2", 2, True)


def test_import_and_export_both_formats(signed_in, user):
    response = signed_in.post(reverse("lorebooks:import"), {"file": _file(world_info())})
    book = Lorebook.objects.get(owner=user)
    assert response.url == reverse("lorebooks:detail", args=[book.pk])
    wi = signed_in.get(reverse("lorebooks:export", args=[book.pk, "world-info"]))
    assert wi["Content-Disposition"] == 'attachment; filename="eldoria.world-info.json"'
    assert json.loads(wi.content) == world_info()
    card = signed_in.get(reverse("lorebooks:export", args=[book.pk, "character-book"]))
    assert len(json.loads(card.content)["entries"]) == 5
    assert signed_in.get(reverse("lorebooks:export", args=[book.pk, "yaml"])).status_code == 404


def test_import_of_a_card_says_what_it_is(signed_in):
    card = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {"name": "Sera", "character_book": card_book()},
    }
    page = signed_in.post(reverse("lorebooks:import"), {"file": _file(card)})
    assert "This is a character card, not a lorebook" in page.content.decode()
    assert not Lorebook.objects.exists()


def test_import_errors_are_shown(signed_in, settings):
    page = signed_in.post(reverse("lorebooks:import"), {"file": _file(b"garbage")})
    assert "The file is not JSON" in page.content.decode()
    settings.LOREBOOK_IMPORT_MAX_BYTES = 10
    page = signed_in.post(reverse("lorebooks:import"), {"file": _file(world_info())})
    assert "larger than" in page.content.decode()
    assert not Lorebook.objects.exists()


ENTRY = {
    "comment": "Veyra",
    "keys": "Veyra, the capital",
    "secondary_keys": "",
    "selective_logic": 0,
    "content": "The capital.",
    "enabled": "on",
    "order": 100,
    "position": "at_depth",
    "depth": 2,
    "probability": 100,
    "case_sensitive": "yes",
    "match_whole_words": "",
}


def test_add_edit_and_delete_an_entry(signed_in, user):
    book = make_book(user)
    signed_in.post(reverse("lorebooks:entry_create", args=[book.pk]), ENTRY)
    entry = LoreEntry.objects.get(lorebook=book)
    assert (entry.keys, entry.position, entry.depth, entry.case_sensitive, entry.match_whole_words) == (
        ["Veyra", "the capital"],
        "at_depth",
        2,
        True,
        None,
    )
    url = reverse("lorebooks:entry_edit", args=[book.pk, entry.pk])
    assert 'value="yes" selected' in signed_in.get(url).content.decode()
    signed_in.post(
        url, {**ENTRY, "keys": "/vey(ra)?/i\nport", "match_whole_words": "no", "prevent_recursion": "on"}
    )
    entry.refresh_from_db()
    assert (entry.keys, entry.match_whole_words, entry.prevent_recursion) == (
        ["/vey(ra)?/i", "port"],
        False,
        True,
    )
    signed_in.post(reverse("lorebooks:entry_delete", args=[book.pk, entry.pk]))
    assert not LoreEntry.objects.exists()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"keys": "/(a)\\1/"}, "cannot be used"),
        ({"keys": "", "constant": ""}, "Give at least one key"),
        ({"probability": 101}, "from 0 to 100"),
        ({"keys": ", ".join(f"k{i}" for i in range(101))}, "At most 100 keys"),
        ({"keys": "x" * 501}, "at most 500 characters"),
        ({"use_regex": "on", "keys": "a(b"}, "cannot be used"),
        ({"position": "nowhere"}, "Select a valid choice"),
    ],
)
def test_entry_form_errors_are_clear(signed_in, user, change, error):
    book = make_book(user)
    page = signed_in.post(reverse("lorebooks:entry_create", args=[book.pk]), {**ENTRY, **change})
    assert page.status_code == 200 and error in page.content.decode()
    assert not LoreEntry.objects.exists()


def test_delete_needs_post(signed_in, user):
    book = make_book(user)
    assert signed_in.get(reverse("lorebooks:delete", args=[book.pk])).status_code == 200
    signed_in.post(reverse("lorebooks:delete", args=[book.pk]))
    assert not Lorebook.objects.exists()


def test_it_checks_owner(signed_in, other_user):
    book = make_book(other_user)
    entry = make_entry(book, 0)
    gets = [
        reverse("lorebooks:detail", args=[book.pk]),
        reverse("lorebooks:entry_create", args=[book.pk]),
        reverse("lorebooks:entry_edit", args=[book.pk, entry.pk]),
        reverse("lorebooks:export", args=[book.pk, "world-info"]),
        reverse("lorebooks:delete", args=[book.pk]),
    ]
    for url in gets:
        assert signed_in.get(url).status_code == 404
        assert signed_in.post(url, {**ENTRY, "name": "x"}).status_code in (404, 405)
    assert signed_in.post(reverse("lorebooks:entry_delete", args=[book.pk, entry.pk])).status_code == 404
    assert Lorebook.objects.filter(pk=book.pk).exists() and LoreEntry.objects.filter(pk=entry.pk).exists()
    book.refresh_from_db()
    assert book.name == "Eldoria"


def test_entry_delete_rejects_get(signed_in, user):
    book = make_book(user)
    entry = make_entry(book, 0)
    assert signed_in.get(reverse("lorebooks:entry_delete", args=[book.pk, entry.pk])).status_code == 405


def test_anonymous_is_sent_to_sign_in(client):
    assert client.get(reverse("lorebooks:list")).status_code == 302


def test_admin_lists_books_with_entries_inline(client, make_user, user):
    client.force_login(make_user(username="root", is_staff=True, is_superuser=True))
    book = make_book(user)
    make_entry(book, 0)
    assert client.get(reverse("admin:lorebooks_lorebook_changelist"), {"q": user.username}).status_code == 200
    page = client.get(reverse("admin:lorebooks_lorebook_change", args=[book.pk]))
    assert page.status_code == 200 and "key0" in page.content.decode()
    client.force_login(make_user(username="staff2", is_staff=True))
    assert client.get(reverse("admin:lorebooks_lorebook_changelist")).status_code == 403


def test_writes_are_rate_limited(signed_in, rate_limits):
    rate_limits["lorebook_change"] = "2/1h"
    for n in range(2):
        assert (
            signed_in.post(
                reverse("lorebooks:create"),
                {"name": f"Book {n}", "scan_depth": 4, "token_budget": 0, "recursion_depth": 3},
            ).status_code
            == 302
        )
    response = signed_in.post(
        reverse("lorebooks:create"),
        {"name": "One too many", "scan_depth": 4, "token_budget": 0, "recursion_depth": 3},
    )
    assert response.status_code == 429 and response["Retry-After"]
    assert Lorebook.objects.count() == 2
    assert signed_in.get(reverse("lorebooks:list")).status_code == 200  # reading is not limited
