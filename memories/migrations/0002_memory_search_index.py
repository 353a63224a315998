"""The memories' full-text index: a generated tsvector with a GIN index on PostgreSQL, an FTS5
table with triggers on SQLite (memories/search_index.py says what each is and why)."""

from django.db import migrations

from memories import search_index


def forwards(apps, schema_editor):
    search_index.install(schema_editor.connection)


def backwards(apps, schema_editor):
    search_index.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("memories", "0001_initial"),
        ("accounts", "0008_user_language"),  # the trigger reads the owner's language
    ]

    operations = [migrations.RunPython(forwards, backwards)]
