"""The versions of a regenerated reply, one-to-one or group: the shown text and its alternatives.

A reply row keeps the text it shows in ``content`` and its earlier versions in
``alternatives`` (newest last). Writing it again keeps the current text as an
alternative; flipping shows the oldest alternative and keeps the current one,
so versions rotate and none is lost.
"""

from __future__ import annotations

MAX_ALTERNATIVES = 10


def versions_keep(alternatives: list[str], content: str) -> list[str]:
    """The alternatives once ``content`` is about to be written again (an empty reply is not kept)."""
    if not content:
        return list(alternatives)
    return [*alternatives, content][-MAX_ALTERNATIVES:]


def versions_rotate(content: str, alternatives: list[str]) -> tuple[str, list[str]]:
    """(the text to show next, the alternatives after it); ``alternatives`` must not be empty."""
    shown, *rest = alternatives
    return shown, [*rest, content]
