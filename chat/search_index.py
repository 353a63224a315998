"""The full-text index of messages, as each database builds it (installed by migration 0014).

PostgreSQL: three columns the ORM never reads, added to ``chat_message``:
``search_config`` (the text-search configuration a message is indexed with,
``english`` by default), ``search_vector``, a stored generated
``to_tsvector(search_config, content)`` column, and ``search_owner``, the
conversation's owner, set by a trigger when a message is written. One GIN
index holds (owner, words), so one user's matches never wade through
everyone's; a btree on (owner, newest first) serves words that are in most
messages. PostgreSQL computes all of it on every write of the row, so no code
path can forget it.
The configuration follows the owner's language (``User.language``) when a
message is written: ``german`` and ``spanish`` stem German and Spanish words,
``english`` the rest (``LANGUAGE_CONFIGS``). A query is parsed with every
configuration the site uses and the results are ORed, so messages written
before a user changed language are still found.

SQLite (the embedded default): an FTS5 table with external content on
``chat_message`` (it stores only the index, the text stays in
``chat_message``) kept in step by three triggers. SQLite's ALTER TABLE
emulation rebuilds a table and drops its triggers with the old copy, so
``sqlite_ensure`` runs after every ``migrate``: it recreates missing triggers and
rebuilds the index from the table when any were missing.

Changing a statement here changes what new databases get, not old ones: do it
in a new migration.
"""

from __future__ import annotations

from companionhub.fulltext_index import FullTextIndex, config_sql

FTS_TABLE = "chat_message_fts"


SQLITE_TABLE_SQL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS chat_message_fts USING fts5("
    "content, content='chat_message', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2', prefix='2 3')"
)
SQLITE_TRIGGERS = {
    "chat_message_fts_insert": (
        "AFTER INSERT ON chat_message BEGIN "
        "INSERT INTO chat_message_fts(rowid, content) VALUES (new.id, new.content); END"
    ),
    "chat_message_fts_delete": (
        "AFTER DELETE ON chat_message BEGIN "
        "INSERT INTO chat_message_fts(chat_message_fts, rowid, content)"
        " VALUES ('delete', old.id, old.content); END"
    ),
    "chat_message_fts_update": (
        "AFTER UPDATE OF content ON chat_message BEGIN "
        "INSERT INTO chat_message_fts(chat_message_fts, rowid, content)"
        " VALUES ('delete', old.id, old.content); "
        "INSERT INTO chat_message_fts(rowid, content) VALUES (new.id, new.content); END"
    ),
}

# Newest first per owner: for a word in most messages, the newest matches are found by walking
# the second instead of collecting every match from the GIN index. (Ordered by id, not date, the
# planner walks the primary key through every other user's messages instead.)
POSTGRES_INDEXES = {
    "chat_message_search": (
        "CREATE INDEX chat_message_search ON chat_message USING gin (search_owner, search_vector)"
    ),
    "chat_message_search_recent": (
        "CREATE INDEX chat_message_search_recent ON chat_message (search_owner, created_at DESC, id DESC)"
    ),
}
POSTGRES_INSTALL = (
    # The UPDATE below would leave deferred foreign-key checks pending, and PostgreSQL refuses
    # to create an index on a table with pending trigger events in the same transaction.
    "SET CONSTRAINTS ALL IMMEDIATE",
    # btree_gin lets one GIN index hold the owner beside the words (a trusted extension: the
    # database's owner may create it).
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "ALTER TABLE chat_message ADD COLUMN search_config regconfig NOT NULL DEFAULT 'english'::regconfig",
    "ALTER TABLE chat_message ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector(search_config, content)) STORED",
    # The conversation's owner, copied onto each message when it is written (a conversation
    # never changes hands): one user's matches come out of the index without reading the others'.
    # The owner's language picks the configuration then (the generated vector is computed after
    # BEFORE triggers, so it follows).
    "ALTER TABLE chat_message ADD COLUMN search_owner bigint",
    # (The statements below are built from this module's constants only, never from input.)
    f"UPDATE chat_message m SET search_owner = c.owner_id, search_config = {config_sql('u.language')}"  # noqa: S608
    " FROM chat_conversation c JOIN accounts_user u ON u.id = c.owner_id WHERE c.id = m.conversation_id",
    f"""CREATE FUNCTION chat_message_search_owner() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        owner_language text;
    BEGIN
        SELECT c.owner_id, u.language INTO NEW.search_owner, owner_language
            FROM chat_conversation c JOIN accounts_user u ON u.id = c.owner_id
            WHERE c.id = NEW.conversation_id;
        NEW.search_config := {config_sql("owner_language")};
        RETURN NEW;
    END $$""",  # noqa: S608
    "CREATE TRIGGER chat_message_search_owner BEFORE INSERT OR UPDATE OF conversation_id ON chat_message"
    " FOR EACH ROW EXECUTE FUNCTION chat_message_search_owner()",
    *POSTGRES_INDEXES.values(),
)
POSTGRES_REMOVE = (
    "DROP TRIGGER IF EXISTS chat_message_search_owner ON chat_message",
    "DROP FUNCTION IF EXISTS chat_message_search_owner()",
    "DROP INDEX IF EXISTS chat_message_search_recent",
    "DROP INDEX IF EXISTS chat_message_search",
    "ALTER TABLE chat_message DROP COLUMN IF EXISTS search_owner",
    "ALTER TABLE chat_message DROP COLUMN IF EXISTS search_vector",
    "ALTER TABLE chat_message DROP COLUMN IF EXISTS search_config",
)


INDEX = FullTextIndex(FTS_TABLE, SQLITE_TABLE_SQL, SQLITE_TRIGGERS, POSTGRES_INSTALL, POSTGRES_REMOVE)
install, remove, sqlite_ensure = INDEX.install, INDEX.remove, INDEX.sqlite_ensure
ensure_after_migrate = INDEX.ensure_after_migrate
