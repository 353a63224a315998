"""Older messages a page at a time, for one-to-one and group chats alike.

Both chat pages show the latest page and fetch older ones from a JSON
endpoint with ``?before=<message id>``. The query, the parsing of ``before``
and the JSON every message shares live here, so the two endpoints stay the
same protocol.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse

if TYPE_CHECKING:
    from chat.models import Message

# The largest id a bigint (PostgreSQL) or INTEGER (SQLite) primary key can hold.
MAX_ID = 2**63 - 1
_ID = re.compile(r"[0-9]{1,19}")


class Page(NamedTuple):
    messages: list[Any]  # oldest first
    has_older: bool


def parse_before(raw: str | None) -> int:
    """The message id in ``?before=``; ValueError unless it is a plain whole number from 1 to MAX_ID.

    ``int()`` alone would also take " 7", "+7" and other scripts' digits.
    """
    if raw is None or not _ID.fullmatch(raw) or not 1 <= int(raw) <= MAX_ID:
        raise ValueError("before must be a message id")
    return int(raw)


def page_before(messages: QuerySet, *, before_id: int | None, size: int) -> Page:
    """Up to ``size`` of ``messages`` older than ``before_id`` (the latest when None), oldest first.

    Reads one row past the page, so ``has_older`` is exact: no "load older"
    control that loads nothing.
    """
    if before_id is not None:
        messages = messages.filter(id__lt=before_id)
    rows = list(messages.order_by("-created_at", "-id")[: size + 1])
    has_older = len(rows) > size
    rows = rows[:size]
    rows.reverse()
    return Page(rows, has_older)


def message_json(message: Message, *, role: str) -> dict[str, Any]:
    """What every message in an older page says; each chat adds its own fields."""
    return {
        "id": message.pk,
        "role": role,
        "content": message.content,
        "complete": message.is_complete,
        "created_at": message.created_at.isoformat(),
        "image_url": message.image.url if message.image is not None else None,
        "versions": len(message.alternatives) + 1,  # a regenerated reply keeps its earlier versions
        "finish_reason": message.finish_reason,  # "length": the reply can be continued
    }


def older_response(
    request: HttpRequest, fetch: Callable[[int], Page], to_json: Callable[[Any], dict[str, Any]]
) -> JsonResponse:
    """The ``?before=`` endpoint after the access check: 400 for a bad id, else the page as JSON."""
    try:
        before = parse_before(request.GET.get("before"))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    page = fetch(before)
    return JsonResponse({"messages": [to_json(m) for m in page.messages], "has_older": page.has_older})
