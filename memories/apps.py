from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MemoriesConfig(AppConfig):
    name = "memories"
    verbose_name = "Memories"

    def ready(self) -> None:
        from memories import search_index

        # SQLite drops a table's triggers when a migration rebuilds it: the memories' full-text
        # triggers come back (and the index is rebuilt) after every migrate.
        post_migrate.connect(
            search_index.ensure_after_migrate, sender=self, dispatch_uid="memories.search_index_ensure"
        )
