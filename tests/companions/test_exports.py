"""``cards_zip_write``: the account export and "export all" write companions' cards into a zip."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from companions import cards
from companions.exports import cards_zip_write
from companions.selectors import companions_for_card_export
from companions.services import companion_set_header
from tests.companions.factories import make_companion, png_bytes

pytestmark = pytest.mark.django_db


def written(companions, *, folder: str) -> tuple[int, dict[str, bytes]]:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        count = cards_zip_write(archive, companions, folder=folder)
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
        return count, {name: archive.read(name) for name in archive.namelist()}


def test_each_card_goes_under_the_folder_with_a_unique_name(user):
    for name in ("Mika", "Mika", "???"):
        make_companion(user, name=name)
    count, entries = written(companions_for_card_export(user), folder="cards/")
    assert count == 3
    assert sorted(entries) == ["cards/companion.png", "cards/mika-2.png", "cards/mika.png"]
    parsed = cards.parse_card_file(entries["cards/mika-2.png"], max_bytes=10 * 1024 * 1024)
    assert parsed.spec == "chara_card_v3" and parsed.data["name"] == "Mika"


def test_an_empty_folder_writes_at_the_root_and_nothing_is_written_for_no_companions(user):
    make_companion(user)
    assert sorted(written(companions_for_card_export(user), folder="")[1]) == ["mika.png"]
    assert written([], folder="cards") == (0, {})


def test_the_card_carries_the_companions_picture(user):
    companion = make_companion(user)
    companion_set_header(companion=companion, data=png_bytes(60, 40, (0, 0, 250)))
    _, entries = written(companions_for_card_export(user), folder="x")
    with Image.open(io.BytesIO(entries["x/mika.png"])) as image:
        assert image.size == (60, 40)
        assert image.getpixel((30, 20))[2] > 200


def test_the_export_query_is_the_owners_only(user, other_user):
    make_companion(user)
    make_companion(other_user, name="Other")
    assert [c.name for c in companions_for_card_export(user)] == ["Mika"]
