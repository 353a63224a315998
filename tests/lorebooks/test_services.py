"""lorebooks.services: imports within limits and all-or-nothing; edits; the scan selector."""

from __future__ import annotations

import io
import json

import pytest

from lorebooks import formats, selectors, services
from lorebooks.formats import LorebookRejected
from lorebooks.models import Lorebook, LoreEntry
from tests.lorebooks.factories import make_book, make_entry
from tests.lorebooks.samples import card_book, st_entry, world_info

pytestmark = pytest.mark.django_db


def _bytes(data) -> bytes:
    return json.dumps(data).encode()


class Upload(io.BytesIO):
    """An uploaded file as Django gives it: bytes with a name and a size."""

    def __init__(self, data: bytes, name: str = "book.json", size: int | None = None) -> None:
        super().__init__(data)
        self.name = name
        self.size = len(data) if size is None else size
        self.read_sizes: list[int] = []

    def read(self, n: int | None = -1) -> bytes:
        self.read_sizes.append(-1 if n is None else n)
        return super().read(n)


def test_import_stores_every_entry_and_exports_the_same_file(user):
    book = services.lorebook_import(user, Upload(_bytes(world_info()), name="eldoria.json"))
    assert (book.owner, book.name, book.source, book.entries.count()) == (user, "Eldoria", "sillytavern", 5)
    assert formats.to_world_info(selectors.parsed_book(book)) == world_info()


def test_a_file_without_a_name_is_named_after_the_file_and_exports_without_one(user):
    data = world_info()
    del data["name"]
    book = services.lorebook_import(user, Upload(_bytes(data), name="my-world.json"))
    assert book.name == "my-world"
    assert formats.to_world_info(selectors.parsed_book(book)) == data


def test_a_card_book_imports_and_exports_the_same(user):
    book = services.lorebook_import(user, _bytes(card_book()), name="Given")
    assert book.name == "Given" and book.source == "card"
    exported = formats.to_character_book(selectors.parsed_book(book))
    assert exported == {**card_book(), "name": "Given"}


def test_a_50_mb_file_is_refused_unread(user, settings):
    settings.LOREBOOK_IMPORT_MAX_BYTES = 5 * 1024 * 1024
    upload = Upload(b"{" + b" " * 1024, size=50 * 1024 * 1024)
    with pytest.raises(LorebookRejected) as exc:
        services.lorebook_import(user, upload)
    assert exc.value.code == "too_large" and "5 MB" in exc.value.message
    assert upload.read_sizes == []


def test_a_file_larger_than_it_says_is_read_only_to_the_limit(user, settings):
    settings.LOREBOOK_IMPORT_MAX_BYTES = 1000
    upload = Upload(b"x" * 50_000, size=10)
    with pytest.raises(LorebookRejected) as exc:
        services.lorebook_import(user, upload)
    assert exc.value.code == "too_large"
    assert upload.read_sizes == [1001]


def test_a_50_mb_body_of_bytes_is_refused(user, settings):
    with pytest.raises(LorebookRejected) as exc:
        services.lorebook_import(user, b" " * (50 * 1024 * 1024))
    assert exc.value.code == "too_large"


def test_100000_entries_are_refused_and_nothing_is_stored(user):
    data = {"entries": {str(i): {"uid": i, "key": ["k"], "content": "c"} for i in range(100_000)}}
    with pytest.raises(LorebookRejected) as exc:
        services.lorebook_import(user, json.dumps(data, separators=(",", ":")).encode())
    assert exc.value.code == "too_many_entries"
    assert not Lorebook.objects.exists()


@pytest.mark.parametrize("body", [b"\xff\xfe garbage", b"{not json", b"", b"[1,2,3]", b'"text"', b"1e999999"])
def test_garbage_is_refused_clearly(user, body):
    with pytest.raises(LorebookRejected) as exc:
        services.lorebook_import(user, body)
    assert exc.value.code in ("not_json", "not_a_lorebook")
    assert not Lorebook.objects.exists()


def test_deeply_nested_json_is_refused_not_crashed(user):
    with pytest.raises(LorebookRejected):
        services.lorebook_import(user, b"[" * 100_000 + b"]" * 100_000)


def test_one_bad_entry_leaves_nothing_half_imported(user):
    data = {"entries": {str(i): st_entry(i, key=["k"], content="c") for i in range(50)}}
    data["entries"]["49"]["key"] = ["/(a)\\1/"]
    with pytest.raises(LorebookRejected) as exc:
        services.lorebook_import(user, _bytes(data))
    assert "entry 49" in exc.value.message
    assert not Lorebook.objects.exists() and not LoreEntry.objects.exists()


def test_a_failure_while_storing_rolls_back(user, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(LoreEntry.objects, "bulk_create", boom)
    with pytest.raises(RuntimeError):
        services.lorebook_import(user, _bytes(world_info()))
    assert not Lorebook.objects.exists()


def test_entries_are_numbered_after_the_last(user, settings):
    book = make_book(user)
    make_entry(book, 7)
    entry = services.entry_create(lorebook=book, keys=["x"], content="y", uid=0)
    assert entry.uid == 8
    settings.LOREBOOK_MAX_ENTRIES = 2
    with pytest.raises(LorebookRejected):
        services.entry_create(lorebook=book, keys=["z"], content="z")


def test_an_edit_keeps_the_import_extras(user):
    book = services.lorebook_import(user, _bytes(world_info()))
    entry = book.entries.get(uid=2)
    services.entry_update(entry=entry, content="Changed.", extras={}, uid=99)
    entry.refresh_from_db()
    assert entry.uid == 2 and entry.extras["rest"]["group"] == "beasts"
    out = formats.to_world_info(selectors.parsed_book(book))["entries"]["2"]
    assert out["content"] == "Changed." and out["sticky"] == 2


def test_scan_books_gives_the_owners_enabled_entries_in_the_order_asked(user, other_user):
    first = make_book(user, "First", case_sensitive=True, match_whole_words=True)
    make_entry(first, 0)
    make_entry(first, 1, enabled=False)
    make_entry(first, 2, case_sensitive=False, match_whole_words=False)
    second = make_book(user, "Second", scan_depth=9, recursion_depth=0, token_budget=50)
    make_entry(second, 0, position="at_depth", depth=2, secondary_keys=["s"], selective_logic=3)
    theirs = make_book(other_user, "Theirs")
    make_entry(theirs, 0)

    books = selectors.scan_books(user.pk, [second.pk, theirs.pk, first.pk, second.pk])
    assert [b.book_id for b in books] == [second.pk, first.pk]
    assert (books[0].scan_depth, books[0].recursion_depth, books[0].token_budget) == (9, 0, 50)
    entry = books[0].entries[0]
    assert (entry.position, entry.depth, entry.secondary_keys, entry.selective_logic) == (
        "at_depth",
        2,
        ("s",),
        3,
    )
    assert [e.uid for e in books[1].entries] == [0, 2]
    assert (books[1].entries[0].case_sensitive, books[1].entries[0].match_whole_words) == (True, True)
    assert (books[1].entries[1].case_sensitive, books[1].entries[1].match_whole_words) == (False, False)
    assert selectors.scan_books(user.pk, []) == []


def test_user_lorebooks_are_the_owners_with_counts(user, other_user):
    mine = make_book(user)
    make_entry(mine, 0)
    make_book(other_user)
    assert [(b.pk, b.entry_count) for b in selectors.user_lorebooks(user)] == [(mine.pk, 1)]
