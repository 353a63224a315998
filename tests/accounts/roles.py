"""Admin roles for tests: the migrated Moderators group, and staff with only view permissions."""

from __future__ import annotations

import importlib

from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission

MODERATORS = "Moderators"


def moderators_group() -> Group:
    """The group the data migration created.

    A transactional test earlier in the run empties every table, and with them
    the rows migrations wrote; then the migration's own code puts it back.
    """
    group = Group.objects.filter(name=MODERATORS).first()
    if group is None:
        migration = importlib.import_module("accounts.migrations.0005_moderators_group")
        migration.create_moderators_group(apps, None)
        group = Group.objects.get(name=MODERATORS)
    return group


def view_permissions() -> list[Permission]:
    """``view_<model>`` for every model in the admin: what "view-only staff" holds."""
    return [
        Permission.objects.get(
            content_type__app_label=model._meta.app_label, codename=f"view_{model._meta.model_name}"
        )
        for model in admin.site._registry
    ]


def grant(user, *perms: str) -> None:
    """Give ``user`` permissions named ``app_label.codename``."""
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
