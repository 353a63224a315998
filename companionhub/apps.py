from django.apps import AppConfig


class CompanionHubConfig(AppConfig):
    name = "companionhub"
    verbose_name = "CompanionHub"

    def ready(self) -> None:
        from django_structlog import signals

        from companionhub.logconfig import bind_client_ip

        signals.bind_extra_request_metadata.connect(bind_client_ip, dispatch_uid="companionhub.client_ip")
