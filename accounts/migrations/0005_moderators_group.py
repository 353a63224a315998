"""The ``Moderators`` group: exactly what moderation needs, and nothing that edits accounts.

Members still need ``is_staff`` (ticked by a superuser) to reach the admin.
What each permission opens is in docs/security.md (admin roles). The list is
frozen here on purpose: changing what moderators may do is a new migration,
reviewed like any other change to access.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

MODERATORS = "Moderators"

MODERATOR_PERMISSIONS = [
    # Accounts: see them, deactivate them (the admin action), lift rate limits,
    # give one user their own token quota. No change_user: that would add
    # renaming accounts and editing their e-mail addresses.
    ("accounts", "view_user"),
    ("accounts", "deactivate_user"),
    ("accounts", "view_ratelimitrecord"),
    ("accounts", "lift_ratelimit"),
    ("accounts", "view_userusage"),
    ("accounts", "change_userusage"),
    ("accounts", "view_usagetransaction"),
    # Companions: read them, wipe a memory, remove a header picture.
    ("companions", "view_companion"),
    ("companions", "wipe_companion_memory"),
    ("companions", "remove_companion_header"),
    # Chats and runs: read, and reset the back ends' circuit breakers.
    ("chat", "view_message"),
    ("chat", "view_pipelinerun"),
    ("chat", "reset_circuit_breakers"),
    # Group chats: read, and delete a whole group or one message.
    ("groups", "view_groupchat"),
    ("groups", "view_groupmessage"),
    ("groups", "delete_groupchat"),
    ("groups", "delete_groupmessage"),
    # Pictures: the rows and the private files themselves.
    ("media", "view_storedimage"),
    ("media", "view_any_image"),
]


def create_moderators_group(apps, schema_editor) -> None:
    """Create (or bring back to this list) the group. Safe to run again."""
    using = schema_editor.connection.alias if schema_editor else "default"
    # Permissions are normally created after the whole migrate run
    # (post_migrate), too late for a fresh database: create them now.
    for label in sorted({app_label for app_label, _ in MODERATOR_PERMISSIONS}):
        create_permissions(global_apps.get_app_config(label), apps=apps, verbosity=0, using=using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(using).get_or_create(name=MODERATORS)
    permissions = [
        Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in MODERATOR_PERMISSIONS
    ]
    group.permissions.set(permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("accounts", "0004_moderation_permissions"),
        ("chat", "0005_moderation_permissions"),
        ("companions", "0003_moderation_permissions"),
        ("groups", "0003_groupmessage_finish_reason"),
        ("media", "0002_view_any_image_permission"),
    ]

    # Rolling back leaves the group (and who is in it) alone: dropping it would
    # silently take moderators' access away, and it grants nothing by itself.
    operations = [migrations.RunPython(create_moderators_group, migrations.RunPython.noop)]
