"""Every admin page and action, as each role: the table in docs/security.md ("Admin roles").

Roles: staff with no permissions, view-only staff (``view_<model>`` for every
model in the admin), a member of the migrated Moderators group, staff holding
every permission there is but not superuser (the pen test's way in: whoever
may change users), and a superuser. A page a role may not open is 403; an
action it may not run changes nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts.models import RateLimitRecord, UsageTransaction, User, UserUsage
from chat.backends import llm_breaker
from chat.connections import connection_save
from chat.models import Connection, Message, PipelineRun, SamplerPreset
from companions.models import Companion, CompanionDraft
from lorebooks.models import Lorebook
from media.services import store_image
from memories.models import Memory
from tests.accounts.roles import grant, moderators_group, view_permissions
from tests.chat.factories import add_exchange, add_user_message, make_chat, make_group_of
from tests.companions.factories import make_companion, png_bytes

ROLES = ("no_permissions", "view_only", "moderator", "all_permissions", "superuser")

VIEW = frozenset({"changelist", "change", "history"})
EVERYTHING = frozenset({"changelist", "add", "change", "delete", "history"})
MODELS = (
    "auth.group",
    "accounts.user",
    "accounts.ratelimitrecord",
    "accounts.userusage",
    "accounts.usagetransaction",
    "companions.companion",
    "companions.companiondraft",
    "chat.conversation",
    "chat.message",
    "chat.pipelinerun",
    "chat.connection",
    "chat.samplerpreset",
    "media.storedimage",
    "lorebooks.lorebook",
    "memories.memory",
)

# The pages each role may open (200); every other one is 403.
PAGES: dict[str, dict[str, frozenset[str]]] = {
    "no_permissions": dict.fromkeys(MODELS, frozenset()),
    "view_only": dict.fromkeys(MODELS, VIEW),
    "moderator": {
        **dict.fromkeys(MODELS, VIEW),
        "auth.group": frozenset(),
        "companions.companiondraft": frozenset(),
        # Users' own writing, not shared: moderators hold no lorebook permission.
        "lorebooks.lorebook": frozenset(),
        "memories.memory": frozenset(),  # what a user's companion remembers of them: private too
        # Connections hold API keys and route every conversation: moderators only look.
        # Shared sampler presets are theirs to make.
        "chat.samplerpreset": EVERYTHING,
        # Conversations (one-to-one and groups) and single messages: read, and delete.
        "chat.conversation": VIEW | {"delete"},
        "chat.message": VIEW | {"delete"},
    },
    "superuser": {
        **dict.fromkeys(MODELS, EVERYTHING),
        # Written by the site only: nobody adds them by hand.
        "accounts.ratelimitrecord": EVERYTHING - {"add"},
        "accounts.usagetransaction": EVERYTHING - {"add"},
        # Started on the site, with their greeting and members.
        "chat.conversation": EVERYTHING - {"add"},
        # Written by the memory step or by their user on the site; never edited here.
        "memories.memory": EVERYTHING - {"add"},
    },
}
PAGES["all_permissions"] = {
    **PAGES["superuser"],
    "accounts.user": EVERYTHING - {"delete"},  # the row walked is a superuser: read-only, not deletable
    "auth.group": VIEW,  # a group's permissions are its members': only superusers change groups
    "chat.connection": VIEW,  # where conversations and API keys go: superusers only
}

# The change pages each role may save (the others are shown read-only).
SAVES: dict[str, frozenset[str]] = {
    "no_permissions": frozenset(),
    "view_only": frozenset(),
    "moderator": frozenset({"accounts.userusage", "chat.samplerpreset"}),
    "superuser": frozenset(MODELS) - {"accounts.usagetransaction", "memories.memory"},
    "all_permissions": frozenset(MODELS)
    - {"accounts.usagetransaction", "accounts.user", "auth.group", "chat.connection", "memories.memory"},
}

# Who may run each action; for everyone else it changes nothing.
ACTIONS: dict[tuple[str, str], frozenset[str]] = {
    ("auth.group", "delete_selected"): frozenset({"superuser"}),
    ("accounts.user", "delete_accounts"): frozenset({"moderator", "all_permissions", "superuser"}),
    ("accounts.user", "deactivate"): frozenset({"moderator", "all_permissions", "superuser"}),
    ("accounts.ratelimitrecord", "delete_selected"): frozenset({"all_permissions", "superuser"}),
    ("accounts.ratelimitrecord", "clear"): frozenset({"moderator", "all_permissions", "superuser"}),
    ("companions.companion", "delete_selected"): frozenset({"all_permissions", "superuser"}),
    ("companions.companion", "wipe_memory"): frozenset({"moderator", "all_permissions", "superuser"}),
    ("companions.companion", "remove_header_image"): frozenset({"moderator", "all_permissions", "superuser"}),
    ("companions.companiondraft", "delete_selected"): frozenset({"all_permissions", "superuser"}),
    ("chat.conversation", "delete_selected"): frozenset({"moderator", "all_permissions", "superuser"}),
    ("chat.message", "delete_selected"): frozenset({"moderator", "all_permissions", "superuser"}),
    ("chat.pipelinerun", "delete_selected"): frozenset({"all_permissions", "superuser"}),
    ("chat.pipelinerun", "reset_circuit_breakers"): frozenset({"moderator", "all_permissions", "superuser"}),
    ("chat.connection", "delete_selected"): frozenset({"superuser"}),
    ("chat.connection", "fetch_models"): frozenset({"all_permissions", "superuser"}),
    ("chat.samplerpreset", "delete_selected"): frozenset({"moderator", "all_permissions", "superuser"}),
    ("media.storedimage", "delete_selected"): frozenset({"all_permissions", "superuser"}),
    ("lorebooks.lorebook", "delete_selected"): frozenset({"all_permissions", "superuser"}),
    ("memories.memory", "delete_selected"): frozenset({"all_permissions", "superuser"}),
}

# Who sees another user's private picture at its own URL (everyone else: 404).
PICTURES = {
    "no_permissions": 404,
    "view_only": 404,
    "moderator": 200,
    "all_permissions": 200,
    "superuser": 200,
}

MODERATOR_PERMISSIONS = {
    "accounts.view_user",
    "accounts.deactivate_user",
    "accounts.delete_user",
    "accounts.view_ratelimitrecord",
    "accounts.lift_ratelimit",
    "accounts.view_userusage",
    "accounts.change_userusage",
    "accounts.view_usagetransaction",
    "companions.view_companion",
    "companions.wipe_companion_memory",
    "companions.remove_companion_header",
    "chat.view_conversation",
    "chat.view_participant",
    "chat.delete_conversation",
    "chat.view_message",
    "chat.delete_message",
    "chat.view_pipelinerun",
    "chat.reset_circuit_breakers",
    "chat.view_connection",
    "chat.view_samplerpreset",
    "chat.add_samplerpreset",
    "chat.change_samplerpreset",
    "chat.delete_samplerpreset",
    "media.view_storedimage",
    "media.view_any_image",
}


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Five accounts a test: Argon2 would spend most of the run hashing passwords nobody types."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _quiet_refusals():
    """Each 403 logs a warning with its traceback; hundreds of them make the walk slow to print."""
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def label(model) -> str:
    return model._meta.label_lower


def test_every_model_and_action_is_in_the_table_and_every_action_names_its_permission(make_user):
    assert {label(model) for model in admin.site._registry} == set(MODELS)
    request = RequestFactory().get("/admin/")
    request.user = make_user(username="root", is_staff=True, is_superuser=True)
    offered = {
        (label(model), name)
        for model, model_admin in admin.site._registry.items()
        for name in model_admin.get_actions(request)
    }
    assert offered == set(ACTIONS)
    # Without allowed_permissions an action is offered to whoever may see the list.
    for model_admin in admin.site._registry.values():
        for action in model_admin._get_base_actions():
            assert getattr(action.func, "allowed_permissions", None), (label(model_admin.model), action.name)


def test_the_migrated_moderators_group_holds_exactly_what_moderation_needs(db):
    group = moderators_group()
    granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
    assert granted == MODERATOR_PERMISSIONS


@pytest.fixture
def role_users(make_user) -> dict[str, User]:
    viewer = make_user(username="viewer", is_staff=True)
    viewer.user_permissions.set(view_permissions())
    moderator = make_user(username="moder", is_staff=True)
    moderator.groups.add(moderators_group())
    everything = make_user(username="manager", is_staff=True)
    everything.user_permissions.set(Permission.objects.all())
    return {
        "no_permissions": make_user(username="helper", is_staff=True),
        "view_only": viewer,
        "moderator": moderator,
        "all_permissions": everything,
        "superuser": make_user(username="root", is_staff=True, is_superuser=True),
    }


@pytest.fixture
def world(role_users, user, settings, tmp_path, fake_llm) -> dict[str, object]:
    """One row of every model in the admin; the user row is the superuser, the hardest case."""
    settings.MEDIA_ROOT = tmp_path
    companion = make_companion(user)
    companion.header_image = store_image(png_bytes(), companion, "header")
    companion.save()
    chat = make_chat(companion)
    said = add_user_message(chat, "private words")
    run = PipelineRun.objects.create(conversation=chat, turn=said.turn, companion=companion, status="failed")
    picture = store_image(png_bytes(), companion, "generated")
    group = make_group_of(user, [companion, make_companion(user, name="Rin")], title="Beach crew")
    _, group_reply = add_exchange(group, companion, "private words", "private words too")
    return {
        "auth.group": Group.objects.create(name="Helpers"),
        "accounts.user": role_users["superuser"],
        "accounts.ratelimitrecord": RateLimitRecord.objects.create(
            scope="login", key="alice", hits=9, reset_at=timezone.now() + timedelta(minutes=5)
        ),
        "accounts.userusage": UserUsage.objects.create(user=user, period_start=timezone.now().date()),
        "accounts.usagetransaction": UsageTransaction.objects.create(
            user=user, companion=companion, run=run, prompt_tokens=5, created_at=timezone.now()
        ),
        "companions.companion": companion,
        "companions.companiondraft": CompanionDraft.objects.create(owner=user),
        "chat.conversation": group,
        "chat.message": group_reply,
        "chat.pipelinerun": run,
        "chat.connection": connection_save(
            connection=Connection(
                name="Local",
                kind="llm",
                provider="openai-compatible",
                base_url=fake_llm.base_url,
                default_model="fake-model",
            ),
            api_key="sk-roles-walk-secret",
        ),
        "chat.samplerpreset": SamplerPreset.objects.create(name="Warm", temperature=1.1),
        "media.storedimage": picture,
        "lorebooks.lorebook": Lorebook.objects.create(owner=user, name="Private lore"),
        "memories.memory": Memory.objects.create(
            owner=user, companion=companion, text="Alice's sister is Mara."
        ),
    }


def url(model_label: str, page: str, obj) -> str:
    app_label, model_name = model_label.split(".")
    args = [] if page in ("changelist", "add") else [obj.pk]
    return reverse(f"admin:{app_label}_{model_name}_{page}", args=args)


@pytest.mark.parametrize("role", ROLES)
def test_every_admin_page_answers_as_the_table_says(client, role_users, world, role):
    client.force_login(role_users[role])
    assert client.get(reverse("admin:index")).status_code == 200
    wrong = []
    for model_label in MODELS:
        for page in sorted(EVERYTHING):
            response = client.get(url(model_label, page, world[model_label]))
            expected = 200 if page in PAGES[role][model_label] else 403
            if response.status_code != expected:
                wrong.append((model_label, page, response.status_code, expected))
            if page == "change" and response.status_code == 200:
                saves = 'name="_save"' in response.content.decode()
                if saves != (model_label in SAVES[role]):
                    wrong.append((model_label, "saves", saves))
    assert wrong == []


@pytest.mark.parametrize("role", ROLES)
def test_only_a_superuser_opens_a_superusers_password_page(client, role_users, role):
    client.force_login(role_users[role])
    root = role_users["superuser"]
    response = client.get(reverse("admin:auth_user_password_change", args=[root.pk]))
    assert response.status_code == (200 if role == "superuser" else 403)


@pytest.fixture
def open_breaker():
    breaker = llm_breaker()
    breaker.reset()
    for _ in range(breaker.threshold):
        breaker.record_failure()
    assert breaker.status().state == "open"
    yield breaker
    breaker.reset()  # the cache outlives the test: leave the back end usable


def snapshot() -> dict[str, object]:
    """Everything an action could change."""
    rows = {
        label(model): sorted(map(str, model._default_manager.values_list("pk", flat=True)))
        for model in admin.site._registry
    }
    return {
        **rows,
        "users": sorted(User.objects.values_list("pk", "is_active", "is_staff", "is_superuser")),
        "headers": sorted(map(str, Companion.objects.values_list("header_image", flat=True))),
        "breaker": llm_breaker().status().state,
    }


def done(model_label: str, action: str, obj) -> bool:
    """Whether ``action`` happened to ``obj``."""
    if action == "deactivate":
        return not User.objects.get(pk=obj.pk).is_active
    if action == "wipe_memory":  # its one-to-one chats are gone
        return not Message.objects.filter(
            conversation__kind="direct", conversation__participants__companion=obj
        ).exists()
    if action == "remove_header_image":
        return Companion.objects.get(pk=obj.pk).header_image_id is None
    if action == "fetch_models":
        return Connection.objects.get(pk=obj.pk).models_fetched_at is not None
    if action == "reset_circuit_breakers":
        return llm_breaker().status().state == "closed"
    return not type(obj)._default_manager.filter(pk=obj.pk).exists()  # delete_selected, clear


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("model_label", "action"), sorted(ACTIONS))
def test_every_admin_action_runs_only_for_the_roles_in_the_table(
    client,
    role_users,
    world,
    user,
    open_breaker,
    django_capture_on_commit_callbacks,
    role,
    model_label,
    action,
):
    # The user actions aim at an ordinary account: sparing superusers has tests of its own.
    target = user if model_label == "accounts.user" else world[model_label]
    client.force_login(role_users[role])
    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url(model_label, "changelist", None),
            {"action": action, "_selected_action": [str(target.pk)], "post": "yes"},
        )
    assert response.status_code in (200, 302, 403)
    if role in ACTIONS[(model_label, action)]:
        assert done(model_label, action, target), response.status_code
    else:
        assert not done(model_label, action, target)
        assert snapshot() == before


@pytest.mark.parametrize("role", ROLES)
def test_another_users_private_picture_takes_a_permission(client, role_users, world, role):
    client.force_login(role_users[role])
    response = client.get(world["media.storedimage"].url)
    assert response.status_code == PICTURES[role]


def test_staff_see_other_users_pictures_only_with_view_any_image(client, staff_user, world):
    picture = world["media.storedimage"].url
    client.force_login(staff_user)
    assert client.get(picture).status_code == 404
    grant(staff_user, "media.view_any_image")
    assert client.get(picture).status_code == 200


def test_the_picture_list_shows_pictures_only_to_those_who_may_see_them(client, role_users, world):
    changelist = reverse("admin:media_storedimage_changelist")
    picture = world["media.storedimage"].url
    client.force_login(role_users["view_only"])
    assert picture not in client.get(changelist).content.decode()
    client.force_login(role_users["moderator"])
    assert picture in client.get(changelist).content.decode()
