"""CHARX: reading a card and its icon from a zip, refusing hostile zips before inflating, writing one."""

from __future__ import annotations

import io
import json
import stat
import struct
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from companions import cards
from companions.cards import charx
from companions.cards.reading import CardRejected
from companions.models import Companion
from companions.selectors import companion_header_bytes
from companions.services import companion_import_card, companion_set_header
from media.imaging import ImageRejected
from media.models import StoredImage
from tests.companions.factories import make_companion, png_bytes
from tests.companions.sillytavern import st_character, st_v3

MAX = 10 * 1024 * 1024
ICON = "assets/icon/images/main.png"


def v3_card(**data) -> dict:
    card = st_v3(st_character())
    card["data"].update(
        {
            "assets": [
                {"type": "icon", "uri": f"embeded://{ICON}", "name": "main", "ext": "png"},
                {
                    "type": "emotion",
                    "uri": "embeded://assets/emotion/images/joy.png",
                    "name": "joy",
                    "ext": "png",
                },
                {"type": "background", "uri": "https://example.invalid/bg.png", "name": "bg", "ext": "png"},
            ],
            **data,
        }
    )
    return card


def make_charx(entries: dict[str, bytes | str] | None = None, *, card: dict | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(card or v3_card()))
        for name, body in (entries if entries is not None else {ICON: png_bytes(30, 20)}).items():
            archive.writestr(name, body)
    return out.getvalue()


def zip_with(infos: list[tuple[zipfile.ZipInfo, bytes]], *, card: bool = True) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        if card:
            archive.writestr("card.json", json.dumps(v3_card()))
        for info, body in infos:
            archive.writestr(info, body)
    return out.getvalue()


def refused(raw: bytes) -> CardRejected:
    with pytest.raises(CardRejected) as caught:
        cards.parse_card_file(raw, max_bytes=MAX)
    return caught.value


def lie_about_size(raw: bytes, name: str, size: int) -> bytes:
    """The zip with ``name``'s uncompressed size set to ``size`` in its local and central headers."""
    data = bytearray(raw)
    encoded = name.encode()
    pos = 0
    while (pos := data.find(b"PK\x03\x04", pos)) != -1:
        if data[pos + 30 : pos + 30 + len(encoded)] == encoded:
            struct.pack_into("<I", data, pos + 22, size)
        pos += 4
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) != -1:
        if data[pos + 46 : pos + 46 + len(encoded)] == encoded:
            struct.pack_into("<I", data, pos + 24, size)
        pos += 4
    return bytes(data)


# --- reading ---------------------------------------------------------------------------------


def test_a_charx_card_is_read_with_its_main_icon():
    parsed = cards.parse_card_file(make_charx(), max_bytes=MAX)
    assert parsed.spec == "chara_card_v3"
    assert parsed.data["name"] == "Seraphina"
    assert parsed.image == png_bytes(30, 20)


def test_the_first_embedded_icon_stands_in_for_a_missing_main():
    card = v3_card(
        assets=[{"type": "icon", "uri": "embeded://assets/icon/images/a.png", "name": "a", "ext": "png"}]
    )
    parsed = cards.parse_card_file(make_charx({"assets/icon/images/a.png": b"A"}, card=card), max_bytes=MAX)
    assert parsed.image == b"A"


def test_a_charx_without_an_icon_has_no_picture():
    parsed = cards.parse_card_file(make_charx({}), max_bytes=MAX)
    assert parsed.image is None


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"PK\x03\x04" + b"\0" * 100, "bad_zip", "not a readable zip"),
        (make_charx({}, card=None)[:40], "bad_zip", "not a readable zip"),
    ],
    ids=["garbage", "truncated"],
)
def test_a_file_that_is_not_a_zip_is_refused(raw, code, words):
    error = refused(raw)
    assert (error.code, words in error.message) == (code, True)


def test_a_zip_without_card_json_is_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("cards/card.json", "{}")
    error = refused(out.getvalue())
    assert error.code == "no_card" and "card.json" in error.message


def test_a_zip_bomb_is_refused_by_its_ratio_before_inflating(monkeypatch):
    bomb = make_charx({"assets/other/bomb.bin": b"\0" * (8 * 1024 * 1024)})
    assert len(bomb) < 100_000
    opened = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: opened.append(a) or pytest.fail("inflated"))
    error = refused(bomb)
    assert error.code == "zip_bomb" and "zip bomb" in error.message
    assert opened == []


def test_a_declared_total_over_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(charx, "MAX_TOTAL_BYTES", 50_000)
    raw = make_charx({f"assets/other/{i}.bin": bytes(range(256)) * 100 for i in range(3)})
    error = refused(raw)
    assert error.code == "zip_too_large" and "unpack to more than" in error.message


def test_a_declared_size_that_is_too_big_is_refused_unread():
    raw = lie_about_size(make_charx(), "card.json", 3 * 1024 * 1024 * 1024)
    assert refused(raw).code in ("zip_too_large", "zip_bomb")


def test_a_declared_size_that_is_too_small_is_caught_when_read():
    raw = lie_about_size(make_charx(), "card.json", 10)
    error = refused(raw)
    assert error.code == "bad_zip" and "card.json cannot be read" in error.message


def test_reading_stops_at_the_cap_whatever_the_header_says(monkeypatch):
    monkeypatch.setattr(charx, "MAX_CARD_JSON_BYTES", 100)
    error = refused(lie_about_size(make_charx(), "card.json", 50))
    assert error.code in ("bad_zip", "zip_entry_too_large")
    assert refused(make_charx()).code == "zip_entry_too_large"


def test_thousands_of_entries_are_refused_before_the_directory_is_parsed(monkeypatch):
    raw = make_charx({f"assets/other/{i}.txt": b"x" for i in range(3000)})
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("parsed"))
    error = refused(raw)
    assert error.code == "zip_too_many_entries" and "3,001 entries" in error.message


def test_an_end_record_that_understates_the_entries_is_caught_from_the_directory():
    raw = bytearray(make_charx({f"assets/other/{i}.txt": b"x" for i in range(300)}))
    end = raw.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", raw, end + 8, 2, 2)  # entries on this disk, entries in all
    error = refused(bytes(raw))
    assert error.code == "zip_too_many_entries" and "301 entries" in error.message


@pytest.mark.parametrize(
    "name",
    ["../evil.png", "assets/../../evil.png", "/etc/passwd", "C:/evil.png", "assets\\..\\evil.png", "./x"],
)
def test_unsafe_entry_names_are_refused(name):
    error = refused(zip_with([(zipfile.ZipInfo(name), b"x")]))
    assert error.code == "zip_unsafe_path" and "unsafe name" in error.message


def test_a_symlink_is_refused():
    link = zipfile.ZipInfo("assets/icon/images/main.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    error = refused(zip_with([(link, b"/etc/passwd")]))
    assert error.code == "zip_symlink"


def test_an_encrypted_entry_is_refused():
    raw = bytearray(make_charx())
    central = raw.find(b"PK\x01\x02")
    raw[central + 8] |= 0x1  # the central directory's flag: "encrypted"
    assert refused(bytes(raw)).code == "zip_encrypted"


def test_duplicate_names_are_refused():
    with pytest.warns(UserWarning):
        raw = zip_with([(zipfile.ZipInfo("card.json"), b"{}")])
    assert refused(raw).code == "zip_duplicate"


def test_an_icon_over_the_picture_limit_is_refused():
    raw = make_charx({ICON: b"\x89PNG" + bytes(range(256)) * 40})
    with pytest.raises(CardRejected) as caught:
        cards.parse_card_file(raw, max_bytes=len(raw) + 10)
    assert caught.value.code == "zip_entry_too_large"


# --- importing ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_importing_a_charx_makes_a_companion_with_its_icon(user):
    companion, _ = companion_import_card(user=user, upload=SimpleUploadedFile("s.charx", make_charx()))
    companion.refresh_from_db()
    assert companion.name == "Seraphina"
    assert (companion.header_image.width, companion.header_image.height) == (30, 20)
    assert companion.config["card"]["unknown"]["assets"] == v3_card()["data"]["assets"]


@pytest.mark.django_db
def test_a_bad_icon_is_refused_by_media_and_nothing_is_kept(user, media_root):
    with pytest.raises(ImageRejected):
        companion_import_card(
            user=user, upload=SimpleUploadedFile("s.charx", make_charx({ICON: b"not a picture"}))
        )
    assert not Companion.objects.exists() and not StoredImage.objects.exists()


@pytest.mark.django_db
def test_a_hostile_charx_creates_nothing(user):
    with pytest.raises(CardRejected):
        companion_import_card(
            user=user,
            upload=SimpleUploadedFile("bomb.charx", make_charx({"a.bin": b"\0" * (4 * 1024 * 1024)})),
        )
    assert not Companion.objects.exists()


# --- writing -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_charx_export_holds_card_json_and_the_stored_picture_as_is(user):
    companion = make_companion(user)
    companion_set_header(companion=companion, data=png_bytes(50, 40))
    picture = companion_header_bytes(companion)
    raw = cards.build_card_charx(cards.build_card(companion), picture)
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        assert sorted(archive.namelist()) == ["assets/icon/images/main.jpg", "card.json"]
        card = json.loads(archive.read("card.json"))
        assert archive.read("assets/icon/images/main.jpg") == picture  # no re-encoding
    assert card["spec"] == "chara_card_v3"
    assert card["data"]["assets"] == [
        {"type": "icon", "uri": "embeded://assets/icon/images/main.jpg", "name": "main", "ext": "jpg"}
    ]
    assert "Mika is a 25-year-old woman" in card["data"]["description"]


def test_the_charx_export_without_a_picture_has_the_placeholder():
    raw = cards.build_card_charx({"spec": "chara_card_v3", "spec_version": "3.0", "data": {"name": "P"}})
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        assert archive.read("assets/icon/images/main.png").startswith(b"\x89PNG")


@pytest.mark.django_db
def test_a_charx_round_trips_its_fields_and_drops_only_the_assets_we_did_not_keep(user):
    first, _ = companion_import_card(user=user, upload=SimpleUploadedFile("s.charx", make_charx()))
    first.refresh_from_db()
    exported = cards.build_card_charx(cards.build_card(first), companion_header_bytes(first))
    parsed = cards.parse_card_file(exported, max_bytes=MAX)
    original = v3_card()["data"]
    for name, value in original.items():
        if name not in ("assets", "extensions"):
            assert parsed.data[name] == value, name
    assert parsed.data["assets"] == [
        {"type": "icon", "uri": "embeded://assets/icon/images/main.jpg", "name": "main", "ext": "jpg"},
        original["assets"][2],  # the link stays; the emotion's file was never kept
    ]
    assert parsed.image == companion_header_bytes(first)
