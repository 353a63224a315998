"""Many companions' cards in one zip: the "export all" download and the account export.

Each card is a PNG with both chunks (``chara`` V2 and ``ccv3`` V3), the format
every card app reads, so the zip can be unpacked and its files imported
anywhere (or here, several at once).
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterable
from typing import IO

from django.utils.text import slugify

from companions import cards
from companions.models import Companion
from companions.selectors import companion_header_bytes


def card_filename(companion: Companion, extension: str) -> str:
    """A safe file name for a companion's card: its name slugified, or ``companion``."""
    return f"{slugify(companion.name) or 'companion'}.{extension}"


def cards_zip_write(zip_file: zipfile.ZipFile, companions: Iterable[Companion], *, folder: str) -> int:
    """Write each companion's card PNG into ``zip_file`` under ``folder``; return how many.

    ``companions`` must be loaded with ``config`` (the stored card) and
    ``header_image``, as ``selectors.companions_for_card_export`` does, and
    be the caller's own (ownership is the caller's query). Names that clash
    get ``-2``, ``-3``, ...; PNGs are stored, not deflated (they are compressed
    already). ``folder`` is ours, never from input; "" writes at the root.
    """
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    used: set[str] = set()
    count = 0
    for companion in companions:
        stem = card_filename(companion, "png").removesuffix(".png")
        name, n = f"{stem}.png", 1
        while name in used:
            n += 1
            name = f"{stem}-{n}.png"
        used.add(name)
        png = cards.build_card_png(cards.build_card(companion), companion_header_bytes(companion))
        zip_file.writestr(f"{prefix}{name}", png, compress_type=zipfile.ZIP_STORED)
        count += 1
    return count


def cards_zip_file(companions: Iterable[Companion]) -> IO[bytes]:
    """A zip of the companions' card PNGs at its root, rewound, for a download response to stream.

    Kept in memory up to a few MB, then in a temporary file, so a user with
    many pictures does not hold them all in the web process's memory.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - the response closes it
    with zipfile.ZipFile(spool, "w") as archive:
        cards_zip_write(archive, companions, folder="")
    spool.seek(0)
    return spool
