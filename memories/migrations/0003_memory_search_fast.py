"""PostgreSQL: the memories' GIN index without a pending list, and a user's memories restemmed
when their language changes, so retrieval parses a query in the owner's configuration only
(memories/search_index.py, ``POSTGRES_0003``, says why). Nothing on SQLite."""

from django.db import migrations

from memories import search_index


def forwards(apps, schema_editor):
    search_index.install_0003(schema_editor.connection)


def backwards(apps, schema_editor):
    search_index.remove_0003(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("memories", "0002_memory_search_index")]

    operations = [migrations.RunPython(forwards, backwards)]
