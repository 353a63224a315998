"""What a database holds: the installed models' tables, their row counts, its migration state.

Backup, restore and the SQLite -> PostgreSQL move all ask the same questions,
sometimes through a Django connection and sometimes through a plain DB-API
cursor on a file no setting names (a backup's copy), so the helpers take a
cursor and the set of tables that exist.
"""

from __future__ import annotations

from django.apps import apps
from django.db import connections
from django.db.models import Model

# Rows that ``migrate`` writes by itself: content types and permissions
# (post_migrate), and the Moderators group with its permissions (a data
# migration, accounts 0005). A database holding only these is still empty for
# restore and move, which replace them with the source's rows.
SETUP_MODELS = frozenset(
    {"contenttypes.contenttype", "auth.permission", "auth.group", "auth.group_permissions"}
)


def installed_models() -> list[type[Model]]:
    """Every model with a table of its own, many-to-many tables included, one per table."""
    seen: set[str] = set()
    models = []
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if not meta.managed or meta.proxy or meta.db_table in seen:
            continue
        seen.add(meta.db_table)
        models.append(model)
    return models


def quote(name: str) -> str:
    """Quote an identifier the way both SQLite and PostgreSQL accept."""
    return '"' + name.replace('"', '""') + '"'


def count_rows(cursor, tables: set[str]) -> dict[str, int]:
    """Rows per model label (``app.model``), for the models whose table exists."""
    counts = {}
    for model in installed_models():
        table = model._meta.db_table
        if table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM {quote(table)}")  # noqa: S608  (a model's table name)
            counts[model._meta.label_lower] = cursor.fetchone()[0]
    return dict(sorted(counts.items()))


def applied_migrations(cursor, tables: set[str]) -> set[tuple[str, str]]:
    if "django_migrations" not in tables:
        return set()
    cursor.execute("SELECT app, name FROM django_migrations")
    return {(app, name) for app, name in cursor.fetchall()}


def latest_migrations(applied: set[tuple[str, str]]) -> dict[str, str]:
    """The latest applied migration per app (names start with their number)."""
    latest: dict[str, str] = {}
    for app, name in applied:
        if name > latest.get(app, ""):
            latest[app] = name
    return dict(sorted(latest.items()))


def database_tables(alias: str = "default") -> set[str]:
    connection = connections[alias]
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def database_counts(alias: str = "default") -> dict[str, int]:
    connection = connections[alias]
    with connection.cursor() as cursor:
        return count_rows(cursor, set(connection.introspection.table_names(cursor)))


def occupied_tables(counts: dict[str, int]) -> dict[str, int]:
    """The models holding rows, leaving out what ``migrate`` writes by itself."""
    return {label: n for label, n in counts.items() if n and label not in SETUP_MODELS}
