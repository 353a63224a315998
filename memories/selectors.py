"""Reads of memories for pages, always scoped to the owner."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import User
from companions.models import Companion
from memories import fulltext
from memories.models import Memory

PAGE_SIZE = 25
SEARCH_MATCHES = 1000  # full-text matches a search reads; substring matches come on top


def memory_get_for_user(user: User, companion_id: int, memory_id: int) -> Memory:
    """The user's memory of that companion, or 404 (never 403: another user's id reveals nothing)."""
    return get_object_or_404(
        Memory.objects.select_related("companion"), pk=memory_id, companion_id=companion_id, owner=user
    )


def memories_for(user: User, companion: Companion, query: str = "") -> QuerySet[Memory]:
    """The companion's memories, newest first; ``query``: those whose words match (full text,
    the last word as a prefix) or that contain it as typed."""
    mine = Memory.objects.filter(owner=user, companion=companion).defer("embedding")
    query = query.strip()
    if query:
        words, prefix = fulltext.search_words(query)
        ids = fulltext.matching(
            owner_id=user.pk, companion_id=companion.pk, words=words, prefix=prefix, limit=SEARCH_MATCHES
        )
        mine = mine.filter(Q(pk__in=ids) | Q(text__icontains=query))
    return mine.order_by("-created_at", "-pk")


def memory_page(user: User, companion: Companion, query: str, number: str | int | None) -> Page:
    return Paginator(memories_for(user, companion, query), PAGE_SIZE).get_page(number)


@dataclass(frozen=True)
class MemoryCounts:
    total: int
    pinned: int
    yours: int  # added or edited by the user


def memory_counts(user: User, companion: Companion) -> MemoryCounts:
    counts = Memory.objects.filter(owner=user, companion=companion).aggregate(
        total=Count("pk"),
        pinned=Count("pk", filter=Q(pinned=True)),
        yours=Count("pk", filter=Q(user_edited=True) | Q(source=Memory.Source.MANUAL)),
    )
    return MemoryCounts(**counts)
