from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # companionhub's health and banner code imports no app: chat tells it how to read
        # the back ends (the default connection of each kind, and a real probe of each).
        # /metrics likewise: the runs by status and every back end's circuit breaker.
        from chat import connections
        from chat import metrics as chat_metrics
        from chat.backends import all_breakers, backend_name, backend_state
        from companionhub import backends_info, health, metrics

        backends_info.register_resolver(backend_name)
        health.register_backend_state(backend_state)
        health.register_probe(connections.probe_connections)
        metrics.register_run_counts(chat_metrics.run_counts)
        metrics.register_breakers(all_breakers)
