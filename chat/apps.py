from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_delete


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # companionhub's health, banner and metrics code imports no app: chat tells it how to
        # read the back ends (the default connection of each kind, and a real probe of each),
        # the runs by status, every back end's circuit breaker, and which pipeline steps there are.
        from chat import connections, embeddings, scene_analysis, search_index, signals, speech_files, steps
        from chat import metrics as chat_metrics
        from chat.backends import all_breakers, backend_name, backend_state
        from chat.conversations import companion_deleting
        from companionhub import backends_info, health, metrics
        from companions import scene as companion_scene
        from companions.models import Companion
        from media import orphans
        from memories import embedding as memory_embedding

        _ = signals  # its receivers connect on import: a spoken clip's file goes with its row
        # The orphan sweep (media imports no chat) learns which audio files a clip row still needs.
        orphans.register_file_owner(
            "speech_clips", owns=speech_files.is_clip_name, referenced=speech_files.clip_names_referenced
        )
        backends_info.register_resolver(backend_name)
        health.register_backend_state(backend_state)
        health.register_probe(connections.probe_connections)
        metrics.register_steps(steps.names())  # the step-duration histogram has one per step
        metrics.register_run_counts(chat_metrics.run_counts)
        metrics.register_breakers(all_breakers)
        # Memories the user writes get their vectors from the companion's LLM connection, which
        # chat owns (memories.embedding treats "not available" and failures as no vector).
        memory_embedding.register_embedder(embeddings.embed_texts)
        # An imported card starts in its own scene, read by the companion's LLM, which chat owns.
        companion_scene.register_card_scene_reader(scene_analysis.card_starting_scene)
        # A companion deleted anywhere (its page, the admin, with its account) takes its one-to-one
        # chats along and stops its replies being written.
        pre_delete.connect(companion_deleting, sender=Companion, dispatch_uid="chat.companion_deleting")
        # SQLite drops a table's triggers when a migration rebuilds it: the search index's
        # triggers come back (and the index is rebuilt) after every migrate.
        post_migrate.connect(
            search_index.ensure_after_migrate, sender=self, dispatch_uid="chat.search_index_ensure"
        )
