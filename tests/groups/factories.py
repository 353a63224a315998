"""Rows for group tests."""

from __future__ import annotations

from groups.models import GroupChat
from tests.companions.factories import make_companion


def make_group(
    user, *names: str, title: str = "Beach crew", replies_per_turn: int | None = None
) -> GroupChat:
    """A group of ``user``'s new companions named ``names`` (two by default)."""
    companions = [make_companion(user, name=name) for name in (names or ("Mika", "Rin"))]
    group = GroupChat.objects.create(creator=user, title=title, replies_per_turn=replies_per_turn)
    group.companions.set(companions)
    return group
