"""The memories' full-text index, as each database builds it (installed by migration 0002).

Retrieval falls back to it when memories have no vector of the model the query has (or the
query has none), and the Memories page searches with it.

PostgreSQL: two columns the ORM never reads, added to ``memories_memory``:
``search_config`` (the text-search configuration a memory is stemmed with, from its owner's
language when it is written, as messages are: ``chat/search_index.py``) and
``search_vector``, a stored generated ``to_tsvector(search_config, text)``. One GIN index
holds (companion, words) (``btree_gin``; in a GIN index the column order does not matter,
each column's keys are looked up alone). PostgreSQL computes the vector on every write of
the row: no code path can forget it.

Migration 0003 adds two things retrieval's speed and its one-configuration query rely on
(``POSTGRES_0003``): the GIN index without its pending list (``fastupdate = off``: a
pending list is scanned whole by every query, 20 ms at a few thousand new memories, and
memories are written a few per turn at most, so updating the index at once costs nothing
that shows), and a trigger that restems a user's memories when their language changes, so
their ``search_config`` is always the owner's language.

SQLite (the embedded default): an FTS5 table with external content on ``memories_memory``
(only the index is stored; the text stays in the table), kept in step by three triggers.
SQLite's ALTER TABLE emulation rebuilds a table and drops its triggers with the old copy, so
``sqlite_ensure`` runs after every ``migrate`` (``memories/apps.py``) and puts back what is
missing, rebuilding the index if it had to.

Changing a statement here changes what new databases get, not old ones: do it in a new
migration.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from companionhub.fulltext_index import FullTextIndex, config_sql

FTS_TABLE = "memories_memory_fts"


SQLITE_TABLE_SQL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS memories_memory_fts USING fts5("
    "text, content='memories_memory', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2', prefix='2 3')"
)
SQLITE_TRIGGERS = {
    "memories_memory_fts_insert": (
        "AFTER INSERT ON memories_memory BEGIN "
        "INSERT INTO memories_memory_fts(rowid, text) VALUES (new.id, new.text); END"
    ),
    "memories_memory_fts_delete": (
        "AFTER DELETE ON memories_memory BEGIN "
        "INSERT INTO memories_memory_fts(memories_memory_fts, rowid, text)"
        " VALUES ('delete', old.id, old.text); END"
    ),
    "memories_memory_fts_update": (
        "AFTER UPDATE OF text ON memories_memory BEGIN "
        "INSERT INTO memories_memory_fts(memories_memory_fts, rowid, text)"
        " VALUES ('delete', old.id, old.text); "
        "INSERT INTO memories_memory_fts(rowid, text) VALUES (new.id, new.text); END"
    ),
}

POSTGRES_INDEXES = {
    "memories_memory_search": (
        "CREATE INDEX memories_memory_search ON memories_memory USING gin (companion_id, search_vector)"
    ),
}
POSTGRES_INSTALL = (
    # As in chat's index: no pending trigger events may block the index build below.
    "SET CONSTRAINTS ALL IMMEDIATE",
    # btree_gin lets one GIN index hold the companion beside the words (a trusted extension).
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "ALTER TABLE memories_memory ADD COLUMN search_config regconfig NOT NULL DEFAULT 'english'::regconfig",
    "ALTER TABLE memories_memory ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector(search_config, text)) STORED",
    # (Built from this module's constants only, never from input.)
    f"UPDATE memories_memory m SET search_config = {config_sql('u.language')}"  # noqa: S608
    " FROM accounts_user u WHERE u.id = m.owner_id",
    f"""CREATE FUNCTION memories_memory_search_config() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        owner_language text;
    BEGIN
        SELECT u.language INTO owner_language FROM accounts_user u WHERE u.id = NEW.owner_id;
        NEW.search_config := {config_sql("owner_language")};
        RETURN NEW;
    END $$""",  # noqa: S608
    "CREATE TRIGGER memories_memory_search_config BEFORE INSERT ON memories_memory"
    " FOR EACH ROW EXECUTE FUNCTION memories_memory_search_config()",
    *POSTGRES_INDEXES.values(),
)
POSTGRES_0003 = (
    "ALTER INDEX memories_memory_search SET (fastupdate = off)",
    "SELECT gin_clean_pending_list('memories_memory_search')",
    f"""CREATE FUNCTION memories_memory_restem() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE memories_memory SET search_config = {config_sql("NEW.language")}
        WHERE owner_id = NEW.id AND search_config <> {config_sql("NEW.language")};
        RETURN NULL;
    END $$""",  # noqa: S608
    "CREATE TRIGGER memories_memory_restem AFTER UPDATE OF language ON accounts_user"
    " FOR EACH ROW WHEN (OLD.language IS DISTINCT FROM NEW.language)"
    " EXECUTE FUNCTION memories_memory_restem()",
    # Memories written while the owner's language was another, before this trigger.
    f"UPDATE memories_memory m SET search_config = {config_sql('u.language')}"  # noqa: S608
    f" FROM accounts_user u WHERE u.id = m.owner_id AND m.search_config <> {config_sql('u.language')}",
)
POSTGRES_0003_REMOVE = (
    "DROP TRIGGER IF EXISTS memories_memory_restem ON accounts_user",
    "DROP FUNCTION IF EXISTS memories_memory_restem()",
    "ALTER INDEX IF EXISTS memories_memory_search RESET (fastupdate)",
)
POSTGRES_REMOVE = (
    "DROP TRIGGER IF EXISTS memories_memory_search_config ON memories_memory",
    "DROP FUNCTION IF EXISTS memories_memory_search_config()",
    "DROP INDEX IF EXISTS memories_memory_search",
    "ALTER TABLE memories_memory DROP COLUMN IF EXISTS search_vector",
    "ALTER TABLE memories_memory DROP COLUMN IF EXISTS search_config",
)


def install_0003(connection: BaseDatabaseWrapper) -> None:
    """Migration 0003 on PostgreSQL (nothing on SQLite): see the module docstring."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for statement in POSTGRES_0003:
                cursor.execute(statement)


def remove_0003(connection: BaseDatabaseWrapper) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for statement in POSTGRES_0003_REMOVE:
                cursor.execute(statement)


# Each term's document count, so retrieval can leave out the words most memories contain
# (``memories.fulltext``), as the planner's statistics do on PostgreSQL.
VOCAB_TABLE = "memories_memory_fts_vocab"
SQLITE_EXTRA = {
    VOCAB_TABLE: f"CREATE VIRTUAL TABLE IF NOT EXISTS {VOCAB_TABLE} USING fts5vocab({FTS_TABLE}, 'row')"
}

INDEX = FullTextIndex(
    FTS_TABLE, SQLITE_TABLE_SQL, SQLITE_TRIGGERS, POSTGRES_INSTALL, POSTGRES_REMOVE, SQLITE_EXTRA
)
install, remove, sqlite_ensure = INDEX.install, INDEX.remove, INDEX.sqlite_ensure
ensure_after_migrate = INDEX.ensure_after_migrate
