"""Who answers a message in a group, and in what order (plain functions)."""

from __future__ import annotations

import re
from collections.abc import Sequence


def named_first(text: str, names: Sequence[tuple[int, str]]) -> int | None:
    """The companion named earliest in ``text`` (whole word, any case), or None."""
    found: list[tuple[int, int]] = []
    for companion_id, name in names:
        match = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, flags=re.IGNORECASE)
        if match:
            found.append((match.start(), companion_id))
    return min(found)[1] if found else None


def plan_turn(
    members: Sequence[tuple[int, str]], *, text: str, turn_index: int, replies_per_turn: int | None
) -> list[int]:
    """The companion ids that answer, in order.

    Round-robin: turn ``n`` starts with member ``n % len(members)`` and goes on
    in the standing order, so each turn another companion speaks first. A
    companion named in the message answers first instead; the rest follow in
    the round-robin order. At most ``replies_per_turn`` answer (all when None).
    """
    if not members:
        return []
    start = turn_index % len(members)
    order = [companion_id for companion_id, _ in [*members[start:], *members[:start]]]
    named = named_first(text, members)
    if named is not None:
        order = [named, *(c for c in order if c != named)]
    count = len(members) if replies_per_turn is None else max(1, min(replies_per_turn, len(members)))
    return order[:count]
