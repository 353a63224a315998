"""Moderators delete accounts with all their data (the admin action, through the same service
as the owner's own deletion). See docs/security.md (admin roles)."""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

MODERATORS = "Moderators"
ADDED = [("accounts", "delete_user")]


def grant(apps, schema_editor) -> None:
    using = schema_editor.connection.alias
    create_permissions(global_apps.get_app_config("accounts"), apps=apps, verbosity=0, using=using)
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
                content_type__app_label="accounts", codename__in=[c for _, c in ADDED]
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_usage_served_by"),
        ("chat", "0012_moderators_moderate_conversations"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
