"""The messages' full-text index: a generated tsvector with a GIN index on PostgreSQL, an FTS5
table with triggers on SQLite (chat/search_index.py says what each is and why)."""

from django.db import migrations

from chat import search_index


def forwards(apps, schema_editor):
    search_index.install(schema_editor.connection)


def backwards(apps, schema_editor):
    search_index.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0013_conversation_transcript_origin"),
        ("accounts", "0008_user_language"),  # the trigger reads the owner's language
    ]

    operations = [migrations.RunPython(forwards, backwards)]
