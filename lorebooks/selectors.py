"""Reading lorebooks, always scoped to their owner."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import User
from lorebooks.formats import ParsedBook, ParsedEntry
from lorebooks.models import Lorebook, LoreEntry
from lorebooks.scanning import ScanBook, ScanEntry


def user_lorebooks(owner: User) -> QuerySet[Lorebook]:
    """The owner's books with their entry counts (``entry_count``), by name."""
    return Lorebook.objects.filter(owner=owner).annotate(entry_count=Count("entries")).order_by("name", "pk")


def lorebook_list_for_user(owner: User) -> list[Lorebook]:
    """The list page's books: entry counts and the companions each is attached to."""
    return list(
        user_lorebooks(owner).prefetch_related(Prefetch("companions", queryset=_companions_queryset(owner)))
    )


def _companions_queryset(owner: User) -> QuerySet:
    # Only names are shown; the companions' large columns are not read.
    from_model = Lorebook._meta.get_field("companions").related_model
    return from_model._default_manager.filter(owner=owner).only("pk", "name", "owner_id").order_by("name")


def lorebook_get_for_user(owner: User, lorebook_id: int) -> Lorebook:
    """The owner's book ``lorebook_id``; 404 for anyone else's or none."""
    return get_object_or_404(Lorebook, pk=lorebook_id, owner=owner)


def entry_get_for_user(owner: User, lorebook_id: int, entry_id: int) -> LoreEntry:
    """An entry of the owner's book; 404 for anyone else's."""
    return get_object_or_404(
        LoreEntry.objects.select_related("lorebook"),
        pk=entry_id,
        lorebook_id=lorebook_id,
        lorebook__owner=owner,
    )


def parsed_book(book: Lorebook) -> ParsedBook:
    """A stored book in ``lorebooks.formats``' shape, for export."""
    entries = [
        ParsedEntry(
            uid=e.uid,
            keys=list(e.keys) if isinstance(e.keys, list) else [],
            secondary_keys=list(e.secondary_keys) if isinstance(e.secondary_keys, list) else [],
            selective_logic=e.selective_logic,
            content=e.content,
            comment=e.comment,
            constant=e.constant,
            enabled=e.enabled,
            order=e.order,
            position=e.position,
            depth=e.depth,
            probability=e.probability,
            case_sensitive=e.case_sensitive,
            match_whole_words=e.match_whole_words,
            use_regex=e.use_regex,
            exclude_recursion=e.exclude_recursion,
            prevent_recursion=e.prevent_recursion,
            extras=e.extras if isinstance(e.extras, dict) else {},
        )
        for e in book.entries.order_by("uid")
    ]
    return ParsedBook(
        name=book.name,
        description=book.description,
        scan_depth=book.scan_depth,
        token_budget=book.token_budget,
        recursion_depth=book.recursion_depth,
        case_sensitive=book.case_sensitive,
        match_whole_words=book.match_whole_words,
        source=book.source,
        extras=book.extras if isinstance(book.extras, dict) else {},
        entries=entries,
    )


def _strings(value: object) -> tuple[str, ...]:
    return tuple(k for k in value if isinstance(k, str)) if isinstance(value, list) else ()


def scan_books(owner_id: int, book_ids: Iterable[int]) -> list[ScanBook]:
    """The books ``book_ids`` of ``owner_id`` (others' are ignored) with their enabled entries,
    in the scanner's shape, in ``book_ids`` order without repeats.

    An entry's case and whole-word switches left unset take the book's.
    """
    wanted = list(dict.fromkeys(int(i) for i in book_ids))
    if not wanted:
        return []
    enabled = LoreEntry.objects.filter(enabled=True).order_by("uid")
    books = {
        b.pk: b
        for b in Lorebook.objects.filter(owner_id=owner_id, pk__in=wanted).prefetch_related(
            Prefetch("entries", queryset=enabled, to_attr="enabled_entries")
        )
    }
    out = []
    for book_id in wanted:
        book = books.get(book_id)
        if book is None:
            continue
        entries = tuple(
            ScanEntry(
                uid=e.uid,
                keys=_strings(e.keys),
                content=e.content,
                secondary_keys=_strings(e.secondary_keys),
                selective_logic=e.selective_logic,
                comment=e.comment,
                constant=e.constant,
                enabled=e.enabled,
                order=e.order,
                position=e.position,
                depth=e.depth,
                probability=e.probability,
                case_sensitive=book.case_sensitive if e.case_sensitive is None else e.case_sensitive,
                match_whole_words=book.match_whole_words
                if e.match_whole_words is None
                else e.match_whole_words,
                use_regex=e.use_regex,
                exclude_recursion=e.exclude_recursion,
                prevent_recursion=e.prevent_recursion,
            )
            for e in book.enabled_entries
        )
        out.append(
            ScanBook(
                book_id=book.pk,
                name=book.name,
                entries=entries,
                scan_depth=book.scan_depth,
                recursion_depth=book.recursion_depth,
                token_budget=book.token_budget,
            )
        )
    return out
