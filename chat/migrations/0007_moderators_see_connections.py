"""Moderators see connections (never their keys) and manage the shared sampler presets.

Connections hold API keys and decide where every conversation is sent: only
superusers add, change, delete them or fetch their model lists. Presets are
sampler numbers, shared for users to pick: moderators make them.
See docs/security.md (admin roles).
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

MODERATORS = "Moderators"
ADDED = [
    ("chat", "view_connection"),
    ("chat", "view_samplerpreset"),
    ("chat", "add_samplerpreset"),
    ("chat", "change_samplerpreset"),
    ("chat", "delete_samplerpreset"),
]


def grant(apps, schema_editor) -> None:
    using = schema_editor.connection.alias
    create_permissions(global_apps.get_app_config("chat"), apps=apps, verbosity=0, using=using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(using).get_or_create(name=MODERATORS)
    for app_label, codename in ADDED:
        group.permissions.add(
            Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)
        )


def revoke(apps, schema_editor) -> None:
    using = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.using(using).filter(name=MODERATORS).first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.using(using).filter(
                content_type__app_label="chat", codename__in=[c for _, c in ADDED]
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0006_connections_presets_companion_backend"),
        ("accounts", "0005_moderators_group"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
