from __future__ import annotations

from typing import Any

from lorebooks.models import Lorebook, LoreEntry


def make_book(owner, name: str = "Eldoria", **fields: Any) -> Lorebook:
    return Lorebook.objects.create(owner=owner, name=name, **fields)


def make_entry(book: Lorebook, uid: int, **fields: Any) -> LoreEntry:
    fields.setdefault("keys", [f"key{uid}"])
    fields.setdefault("content", f"Content {uid}.")
    return LoreEntry.objects.create(lorebook=book, uid=uid, **fields)
