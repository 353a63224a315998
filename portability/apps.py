from django.apps import AppConfig


class PortabilityConfig(AppConfig):
    name = "portability"
    verbose_name = "Your data"

    def ready(self) -> None:
        from portability import signals  # noqa: F401  (connects the receivers)
