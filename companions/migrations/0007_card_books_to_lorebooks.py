"""Move each imported card's ``character_book`` out of ``config["card"]`` into a lorebook.

Imports now make the card's book a ``Lorebook`` of the importer (``companion.card_book``,
attached to the companion), and the export writes it back from there; this gives cards
imported before the same shape, so there is one copy of each book. A book that cannot be
read as one (over the lorebook limits, a pattern RE2 refuses) stays in the card as it was,
exactly as a new import keeps it. Reversing puts the books back into the cards.
"""

from __future__ import annotations

from django.db import migrations

from lorebooks import formats

BOOK_FIELDS = formats.BOOK_COLUMNS
ENTRY_FIELDS = formats.ENTRY_COLUMNS


def books_to_rows(apps, schema_editor):
    Companion = apps.get_model("companions", "Companion")
    Lorebook = apps.get_model("lorebooks", "Lorebook")
    LoreEntry = apps.get_model("lorebooks", "LoreEntry")
    ids = Companion.objects.filter(config__has_key="card", card_book__isnull=True).values_list("pk", flat=True)
    for companion_id in list(ids.order_by("pk")):
        companion = Companion.objects.only("pk", "owner_id", "name", "config").get(pk=companion_id)
        card = companion.config.get("card") if isinstance(companion.config, dict) else None
        if not isinstance(card, dict) or card.get("character_book") is None:
            continue
        try:
            parsed = formats.read_character_book(card["character_book"], default_name=companion.name)
        except formats.LorebookRejected:
            continue  # kept in the card, as an import keeps such a book
        book = Lorebook.objects.create(
            owner_id=companion.owner_id,
            source=parsed.source,
            extras=parsed.extras,
            **{name: getattr(parsed, name) for name in BOOK_FIELDS},
        )
        LoreEntry.objects.bulk_create(
            [
                LoreEntry(lorebook=book, extras=e.extras, **{name: getattr(e, name) for name in ENTRY_FIELDS})
                for e in parsed.entries
            ],
            batch_size=500,
        )
        del card["character_book"]
        Companion.objects.filter(pk=companion.pk).update(config=companion.config, card_book=book)
        companion.lorebooks.add(book)


def rows_to_books(apps, schema_editor):
    Companion = apps.get_model("companions", "Companion")
    for companion in Companion.objects.filter(card_book__isnull=False).select_related("card_book"):
        book = companion.card_book
        parsed = formats.ParsedBook(
            source=book.source,
            extras=book.extras,
            entries=[
                formats.ParsedEntry(extras=e.extras, **{name: getattr(e, name) for name in ENTRY_FIELDS})
                for e in book.entries.order_by("uid")
            ],
            **{name: getattr(book, name) for name in BOOK_FIELDS},
        )
        config = companion.config if isinstance(companion.config, dict) else {}
        card = config.setdefault("card", {})
        if isinstance(card, dict):
            card["character_book"] = formats.to_character_book(parsed)
        Companion.objects.filter(pk=companion.pk).update(config=config, card_book=None)
        book.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("companions", "0006_lorebooks"),
        ("lorebooks", "0001_initial"),
    ]

    operations = [migrations.RunPython(books_to_rows, rows_to_books, elidable=False)]
