"""CHARX: a Character Card V3 in a zip (``card.json`` at the root, assets under ``assets/``).

A zip is a classic way in for a hostile upload (a bomb of a few KB that
inflates to gigabytes, ``../`` names, symlinks, a hundred thousand entries),
so every entry is judged from the central directory before a single byte is
inflated: the entry count, the declared total size, each entry's compression
ratio, and each name (no absolute, drive, backslash or ``..`` paths, no
symlinks, no encryption, no duplicates). Declared sizes can lie, so the two
entries we read (``card.json`` and the main icon) are read with a hard cap on
the bytes actually inflated, and ``zipfile``'s CRC check catches a size that
does not match the data. Nothing is written to disk; other assets (emotion
sprites, backgrounds, sounds, modules) are not read at all.

The main icon (an ``icon`` asset named ``main``, else the first embedded
``icon``) becomes the companion's picture, through ``media`` like a PNG
card's picture.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import stat
import struct
import zipfile
from typing import Any

from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from companions.cards.reading import CardRejected, ParsedCard, card_from_object, load_json, mb

ZIP_SIGNATURE = b"PK\x03\x04"
CARD_ENTRY = "card.json"
EMBEDDED_PREFIXES = ("embeded://", "embedded://")  # the spec's spelling, and the obvious one
MAX_ENTRIES = 256
MAX_TOTAL_BYTES = 64 * 1024 * 1024  # declared, uncompressed, all entries together
MAX_CARD_JSON_BYTES = 4 * 1024 * 1024
MAX_RATIO = 100  # uncompressed / compressed, for entries big enough to matter
RATIO_MIN_BYTES = 64 * 1024
ICON_PATH = "assets/icon/images/main"

_DRIVE = re.compile(r"^[A-Za-z]:")


def _refuse(code: str, message: str) -> CardRejected:
    return CardRejected(code, message)


def _unsafe_name(name: str) -> bool:
    parts = name.split("/")
    return (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\0" in name
        or bool(_DRIVE.match(name))
        or any(part in ("..", ".") for part in parts)
    )


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_zip(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Every entry judged from the central directory; the entries by name when all pass."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:  # the end record can understate it
        raise _too_many(len(infos))
    by_name: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        if _unsafe_name(info.filename):
            raise _refuse(
                "zip_unsafe_path",
                _("The CHARX file has an entry with an unsafe name (%(name)s).")
                % {"name": repr(info.filename[:80])},
            )
        if _is_symlink(info):
            raise _refuse(
                "zip_symlink",
                _("The CHARX file has a symbolic link (%(name)s).") % {"name": repr(info.filename[:80])},
            )
        if info.flag_bits & 0x1:
            raise _refuse("zip_encrypted", _("The CHARX file is encrypted."))
        if info.filename in by_name:
            raise _refuse(
                "zip_duplicate",
                _("The CHARX file has two entries named %(name)s.") % {"name": repr(info.filename[:80])},
            )
        by_name[info.filename] = info
        total += info.file_size
        if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise _refuse(
                "zip_bomb",
                _("The CHARX entry %(name)s inflates more than %(ratio)s times: refused as a zip bomb.")
                % {"name": repr(info.filename[:80]), "ratio": MAX_RATIO},
            )
    if total > MAX_TOTAL_BYTES:
        raise _refuse(
            "zip_too_large",
            _("The CHARX file would unpack to more than %(size)s.") % {"size": mb(MAX_TOTAL_BYTES)},
        )
    return by_name


# The two entries we read, each with its own sentences (an entry's name alone would not fit
# every language's grammar).
_TOO_LARGE = {
    "card": gettext_lazy("The CHARX card.json is larger than %(size)s."),
    "picture": gettext_lazy("The CHARX picture is larger than %(size)s."),
}
_UNREADABLE = {
    "card": gettext_lazy(
        "The CHARX card.json cannot be read: the file is damaged or uses an unsupported compression."
    ),
    "picture": gettext_lazy(
        "The CHARX picture cannot be read: the file is damaged or uses an unsupported compression."
    ),
}


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, what: str) -> bytes:
    """The entry's bytes, never inflating more than ``cap`` + 1 whatever its header says.

    ``what`` is "card" or "picture" (it chooses the message).
    """
    if info.file_size > cap:
        raise _refuse("zip_entry_too_large", str(_TOO_LARGE[what]) % {"size": mb(cap)})
    try:
        with archive.open(info) as entry:
            data = entry.read(cap + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise _refuse("bad_zip", str(_UNREADABLE[what])) from exc
    if len(data) > cap:
        raise _refuse("zip_entry_too_large", str(_TOO_LARGE[what]) % {"size": mb(cap)})
    return data


def embedded_path(uri: Any) -> str | None:
    if not isinstance(uri, str):
        return None
    for prefix in EMBEDDED_PREFIXES:
        if uri.lower().startswith(prefix):
            return uri[len(prefix) :]
    return None


def is_embedded(asset: Any) -> bool:
    return isinstance(asset, dict) and embedded_path(asset.get("uri")) is not None


def main_icon_path(data: dict[str, Any]) -> str | None:
    """The zip path of the card's main icon: the ``icon`` named ``main``, else the first embedded icon."""
    assets = data.get("assets")
    if not isinstance(assets, list):
        return None
    icons = [a for a in assets if is_embedded(a) and a.get("type") == "icon"]
    main = [a for a in icons if a.get("name") == "main"]
    chosen = (main or icons or [None])[0]
    return embedded_path(chosen.get("uri")) if chosen else None


def declared_entry_count(raw: bytes) -> int | None:
    """The entry count the zip's end record declares (ZIP64 too), or None when there is none.

    Read before ``zipfile`` parses the directory: a 10 MB upload can declare
    two hundred thousand tiny entries, and building an object for each is
    the cost to avoid.
    """
    end = raw.rfind(b"PK\x05\x06", max(0, len(raw) - 22 - 0xFFFF))
    if end < 0 or end + 22 > len(raw):
        return None
    (count,) = struct.unpack_from("<H", raw, end + 10)
    if count != 0xFFFF:
        return count
    zip64 = raw.rfind(b"PK\x06\x06", 0, end)
    if zip64 < 0 or zip64 + 56 > len(raw):
        return None
    (count64,) = struct.unpack_from("<Q", raw, zip64 + 32)
    return count64


def _too_many(count: int) -> CardRejected:
    return _refuse(
        "zip_too_many_entries",
        _("The CHARX file has %(count)s entries; at most %(max)s are accepted.")
        % {"count": number_format(count, force_grouping=True), "max": number_format(MAX_ENTRIES)},
    )


def read_charx(raw: bytes, *, max_picture_bytes: int) -> ParsedCard:
    """The card in a CHARX file, with its main icon as the picture (or none)."""
    declared = declared_entry_count(raw)
    if declared is not None and declared > MAX_ENTRIES:
        raise _too_many(declared)
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _refuse(
            "bad_zip", _("The file looks like a zip (CHARX) but is not a readable zip archive.")
        ) from exc
    with archive:
        entries = check_zip(archive)
        card_info = entries.get(CARD_ENTRY)
        if card_info is None:
            raise _refuse("no_card", _("This CHARX file has no card.json at its root."))
        parsed = card_from_object(
            load_json(_read_capped(archive, card_info, MAX_CARD_JSON_BYTES, "card")), image=None
        )
        icon = main_icon_path(parsed.data)
        if icon is None or icon not in entries:
            return parsed
        picture = _read_capped(archive, entries[icon], max_picture_bytes, "picture")
    return dataclasses.replace(parsed, image=picture)


def write_charx(card: dict[str, Any], picture: bytes, picture_ext: str) -> bytes:
    """A CHARX file of ``card`` (written as V3) with ``picture`` as its main icon.

    The card's other embedded assets are not ours to give (their files were
    not kept), so they are left out; links to outside assets stay.
    """
    data = dict(card.get("data") or {})
    icon_path = f"{ICON_PATH}.{picture_ext}"
    kept = [a for a in data.get("assets") or [] if not is_embedded(a) and not _is_main_icon(a)]
    data["assets"] = [
        {"type": "icon", "uri": f"embeded://{icon_path}", "name": "main", "ext": picture_ext},
        *kept,
    ]
    v3 = {**card, "spec": "chara_card_v3", "spec_version": _v3_version(card), "data": data}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(CARD_ENTRY, json_text(v3), compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(icon_path, picture, compress_type=zipfile.ZIP_STORED)  # already compressed
    return out.getvalue()


def _is_main_icon(asset: Any) -> bool:
    return isinstance(asset, dict) and asset.get("type") == "icon" and asset.get("name") == "main"


def _v3_version(card: dict[str, Any]) -> str:
    version = card.get("spec_version")
    return version if card.get("spec") == "chara_card_v3" and isinstance(version, str) else "3.0"


def json_text(card: dict[str, Any]) -> str:
    """A card as compact JSON, non-ASCII kept (what ``JSON.stringify`` writes)."""
    return json.dumps(card, ensure_ascii=False, separators=(",", ":"))
