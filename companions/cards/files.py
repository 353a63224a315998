"""Which kind of card file this is (PNG, JSON or CHARX), told from its first bytes, not its name."""

from __future__ import annotations

from django.utils.translation import gettext as _

from companions.cards.charx import ZIP_SIGNATURE, read_charx
from companions.cards.reading import (
    PNG_SIGNATURE,
    CardRejected,
    ParsedCard,
    card_from_object,
    card_from_png,
    load_json,
    too_large_message,
)
from lorebooks import formats as lorebook_formats


def parse_card_file(raw: bytes, *, max_bytes: int) -> ParsedCard:
    """Read a card from a PNG, JSON or CHARX file's bytes; ``CardRejected`` says what is wrong.

    ``max_bytes`` bounds the file, and a CHARX's picture too.
    """
    if not raw:
        raise CardRejected("empty", _("The file is empty."))
    if len(raw) > max_bytes:
        raise CardRejected("too_large", too_large_message(max_bytes))
    if raw.startswith(PNG_SIGNATURE):
        return card_from_png(raw)
    if raw.startswith(ZIP_SIGNATURE):
        return read_charx(raw, max_picture_bytes=max_bytes)
    if raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        obj = load_json(raw)
        if lorebook_formats.detect(obj) in (lorebook_formats.WORLD_INFO, lorebook_formats.CHARACTER_BOOK):
            message = _("This is a lorebook (World Info) file, not a character card.")
            raise CardRejected("is_lorebook", message)
        return card_from_object(obj, image=None)
    raise CardRejected(
        "not_a_card_file",
        _("The file is neither a PNG character card, a JSON character card nor a CHARX file."),
    )
