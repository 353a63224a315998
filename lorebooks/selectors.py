"""Reading lorebooks.

INTERFACE (skeleton): ``scan_books``'s signature is the contract the chat pipeline codes against.
"""

from __future__ import annotations

from collections.abc import Iterable

from lorebooks.scanning import ScanBook


def scan_books(owner_id: int, book_ids: Iterable[int]) -> list[ScanBook]:
    """The books ``book_ids`` of ``owner_id`` (others' are ignored) with their enabled entries,
    in the scanner's shape, in ``book_ids`` order without repeats."""
    raise NotImplementedError
