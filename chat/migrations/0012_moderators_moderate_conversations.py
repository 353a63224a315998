"""Moderators moderate conversations as they moderated group chats.

Group chats became conversations (0010); the Moderators group still held the
permissions of the group models, which are gone. It gets their successors:
see conversations and their members, delete a whole conversation or one
message. See docs/security.md (admin roles).
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

MODERATORS = "Moderators"
ADDED = [
    ("chat", "view_conversation"),
    ("chat", "view_participant"),
    ("chat", "delete_conversation"),
    ("chat", "delete_message"),
]
# The group chats' permissions (view and delete a group chat or group message): their models are gone.
REMOVED_APP = "groups"


def grant(apps, schema_editor) -> None:
    using = schema_editor.connection.alias
    create_permissions(global_apps.get_app_config("chat"), apps=apps, verbosity=0, using=using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(using).get_or_create(name=MODERATORS)
    group.permissions.remove(*Permission.objects.using(using).filter(content_type__app_label=REMOVED_APP))
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
        ("chat", "0011_conversation_links_required"),
        ("chat", "0007_moderators_see_connections"),
        ("accounts", "0005_moderators_group"),
        ("groups", "0004_folded_into_chat"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
