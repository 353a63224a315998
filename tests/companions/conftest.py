"""Companion test fixtures: a private MEDIA_ROOT for every test, one companion of ``user``, and
a translation catalogue written for a test."""

from __future__ import annotations

import array
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.companions.factories import make_companion


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def companion(user):
    return make_companion(user)


def write_mo(path: Path, messages: dict[str, str]) -> None:
    """A GNU ``.mo`` file of ``messages`` (msgid, or "context\\x04msgid", -> translation)."""
    entries = {"": "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n"}
    entries.update(messages)
    keys = sorted(k.encode() for k in entries)
    values = {k.encode(): v.encode() for k, v in entries.items()}
    ids = strs = b""
    offsets = []
    for key in keys:
        offsets.append((len(ids), len(key), len(strs), len(values[key])))
        ids += key + b"\0"
        strs += values[key] + b"\0"
    key_start = 7 * 4 + 16 * len(keys)
    value_start = key_start + len(ids)
    table = []
    for id_at, id_len, _str_at, _str_len in offsets:
        table += [id_len, id_at + key_start]
    for _id_at, _id_len, str_at, str_len in offsets:
        table += [str_len, str_at + value_start]
    header = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + len(keys) * 8, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.array("i", table).tobytes() + ids + strs)


@pytest.fixture
def translated(settings, tmp_path) -> Callable[[str, dict[str, str]], None]:
    """Install a catalogue for one language, for this test only.

    The project's real catalogues are assembled elsewhere; these tests need
    only a few words to prove what is translated and what must stay as it is.
    Changing ``LOCALE_PATHS`` makes Django drop the translations it loaded.
    """

    def install(language: str, messages: dict[str, str]) -> None:
        write_mo(tmp_path / "locale" / language / "LC_MESSAGES" / "django.mo", messages)
        settings.LOCALE_PATHS = [str(tmp_path / "locale")]

    return install
