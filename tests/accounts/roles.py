"""Admin roles for tests: the migrated Moderators group, and staff with only view permissions."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.loader import MigrationLoader

MODERATORS = "Moderators"


# The migrations that make the Moderators group what it is, in order, and their functions.
MODERATOR_MIGRATIONS = (
    ("accounts", "0005_moderators_group", "create_moderators_group"),
    ("chat", "0007_moderators_see_connections", "grant"),
    ("chat", "0012_moderators_moderate_conversations", "grant"),
    ("accounts", "0007_moderators_delete_accounts", "grant"),
)


def moderators_group() -> Group:
    """The group the data migrations made.

    A transactional test earlier in the run empties every table, and with them
    the rows migrations wrote; then the migrations' own code puts it back, each
    with the models as they were when it ran (the first names the group chats'
    permissions, which a later one takes away).
    """
    group = Group.objects.filter(name=MODERATORS).first()
    if group is None:
        loader = MigrationLoader(connection)
        for app_label, name, function in MODERATOR_MIGRATIONS:
            before = loader.project_state((app_label, name), at_end=False).apps
            migration = importlib.import_module(f"{app_label}.migrations.{name}")
            getattr(migration, function)(before, SimpleNamespace(connection=connection))
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
