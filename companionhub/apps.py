from django.apps import AppConfig


class CompanionHubConfig(AppConfig):
    name = "companionhub"
    verbose_name = "CompanionHub"
