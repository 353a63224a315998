"""Full-text indexes the database keeps itself: the rules every indexed table shares.

Messages (``chat/search_index.py``) and memories (``memories/search_index.py``) are indexed
the same way, each with SQL of its own:

* PostgreSQL: columns the ORM never reads (a stored generated ``tsvector`` and the
  text-search configuration it was stemmed with) and a GIN index, written by the app's SQL
  (``postgres_install``), so no code path can forget to index a row. The configuration
  follows the owner's language: ``config_sql`` is that rule in SQL, ``LANGUAGE_CONFIGS``
  the table behind it.
* SQLite (the embedded default): an FTS5 table with external content kept in step by
  triggers. SQLite's ALTER TABLE emulation rebuilds a table and drops its triggers with the
  old copy, so ``sqlite_ensure`` runs after every ``migrate`` (each app connects
  ``ensure_after_migrate``): it puts back missing triggers and then rebuilds the index.

Changing a statement changes what new databases get, not old ones: do it in a migration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

# A site language -> the PostgreSQL text-search configuration its owner's text is stemmed with.
LANGUAGE_CONFIGS = {"en": "english", "de": "german", "es": "spanish"}
DEFAULT_CONFIG = "english"
# Every configuration a row can have been stemmed with.
SEARCH_CONFIGS = tuple(dict.fromkeys((DEFAULT_CONFIG, *LANGUAGE_CONFIGS.values())))


def config_sql(language: str) -> str:
    """SQL: the configuration for the language code in the SQL expression ``language`` (a
    region such as de-at counts as de; anything else is ``DEFAULT_CONFIG``)."""
    whens = " ".join(f"WHEN '{code}' THEN '{config}'" for code, config in LANGUAGE_CONFIGS.items())
    return (
        f"(CASE split_part(coalesce({language}, ''), '-', 1) {whens} ELSE '{DEFAULT_CONFIG}' END)::regconfig"
    )


@dataclass(frozen=True)
class FullTextIndex:
    """One table's index: its SQL per database, and how it is installed, removed and repaired."""

    fts_table: str  # SQLite's FTS5 table
    sqlite_table_sql: str
    sqlite_triggers: Mapping[str, str]  # name -> the rest of its CREATE TRIGGER statement
    postgres_install: Sequence[str]
    postgres_remove: Sequence[str]
    # SQLite: more objects over the FTS table, made (IF NOT EXISTS) whenever it is ensured,
    # with their names for ``remove`` (e.g. an fts5vocab table of document counts).
    sqlite_extra: Mapping[str, str] = field(default_factory=dict)

    def install(self, connection: BaseDatabaseWrapper) -> None:
        """Build the index for ``connection``'s database, over the rows already there."""
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                for statement in self.postgres_install:
                    cursor.execute(statement)
            elif connection.vendor == "sqlite":
                cursor.execute(self.sqlite_table_sql)
        self.sqlite_ensure(connection)

    def remove(self, connection: BaseDatabaseWrapper) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                for statement in self.postgres_remove:
                    cursor.execute(statement)
            elif connection.vendor == "sqlite":
                for name in self.sqlite_triggers:
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
                for name in self.sqlite_extra:
                    cursor.execute(f"DROP TABLE IF EXISTS {name}")
                cursor.execute(f"DROP TABLE IF EXISTS {self.fts_table}")

    def sqlite_ensure(self, connection: BaseDatabaseWrapper) -> bool:
        """SQLite: recreate any missing trigger, then rebuild the index; True when it had to.

        A no-op elsewhere, and when the FTS table is not there (before its migration).
        """
        if connection.vendor != "sqlite":
            return False
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE name LIKE %s", [f"{self.fts_table}%"])
            present = {row[0] for row in cursor.fetchall()}
            if self.fts_table not in present:
                return False
            for statement in self.sqlite_extra.values():
                cursor.execute(statement)
            missing = [name for name in self.sqlite_triggers if name not in present]
            for name in missing:
                cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {self.sqlite_triggers[name]}")
            if missing:
                # The table's name is the code's constant, never input.
                cursor.execute(f"INSERT INTO {self.fts_table}({self.fts_table}) VALUES ('rebuild')")  # noqa: S608
        return bool(missing)

    def ensure_after_migrate(self, sender: object, using: str = "default", **kwargs: object) -> None:
        """``post_migrate`` receiver: ``sqlite_ensure`` on the database just migrated."""
        self.sqlite_ensure(connections[using])
