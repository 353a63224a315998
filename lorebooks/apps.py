from django.apps import AppConfig


class LorebooksConfig(AppConfig):
    name = "lorebooks"
    verbose_name = "Lorebooks"
