from django.apps import AppConfig


class CompanionsConfig(AppConfig):
    name = "companions"
    verbose_name = "Companions"

    def ready(self) -> None:
        from accounts import usage
        from companions.services import companion_add_tokens

        # accounts charges runs and imports no other app: it adds to the companion's total through this.
        usage.register_companion_tokens(companion_add_tokens)
