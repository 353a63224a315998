"""Moderation: one user's conversations, messages and runs, from their page and by filters.

Group and one-to-one messages are found the same way: by the conversation's
owner and members (a user's own message has no sender).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from chat.admission import run_admit
from chat.runs import run_create
from tests.accounts.roles import moderators_group
from tests.chat.factories import add_exchange, add_user_message, make_chat, make_group_of
from tests.companions.factories import make_companion

MESSAGES = "admin:chat_message_changelist"
RUNS = "admin:chat_pipelinerun_changelist"
CONVERSATIONS = "admin:chat_conversation_changelist"


@pytest.fixture
def world(user, other_user):
    """Alice's one-to-one chat with Hana and her group with Hana and Rin; Mallory's chat with Zed."""
    hana = make_companion(user, name="Hana")
    rin = make_companion(user, name="Rin")
    zed = make_companion(other_user, name="Zed")
    chat = make_chat(hana)
    group = make_group_of(user, [hana, rin])
    theirs = make_chat(zed)
    said, reply = add_exchange(chat, hana, "hello there", "hi alice")
    group_said = add_user_message(group, "hello crew")
    group_reply = add_exchange(group, rin, "and you, Rin?", "sure")[1]
    other = add_user_message(theirs, "mallory's words")
    run = run_create(
        companion=hana,
        want_image=False,
        admission=run_admit(user, want_image=False),
        conversation=chat,
        turn=said.turn,
    )
    return {
        "alice": user,
        "mallory": other_user,
        "hana": hana,
        "rin": rin,
        "chat": chat,
        "group": group,
        "alices_messages": {said, reply, group_said, group_reply, *group.messages.all()},
        "group_messages": set(group.messages.all()),
        "other": other,
        "run": run,
    }


@pytest.fixture
def moderator(make_user):
    moderator = make_user(username="mod", is_staff=True)
    moderator.groups.add(moderators_group())
    return moderator


def listed(client, url_name, params):
    response = client.get(reverse(url_name), params)
    assert response.status_code == 200, response.status_code
    return set(response.context["cl"].result_list), response


def test_messages_filter_by_owner_id_in_groups_and_one_to_one_alike(client, moderator, world):
    client.force_login(moderator)
    found, response = listed(client, MESSAGES, {"conversation__owner__id__exact": world["alice"].pk})
    assert found == world["alices_messages"]
    assert world["other"] not in found
    # The chosen owner is shown as a filter, with "All" to clear it, and no wall of other users.
    page = response.content.decode()
    assert "By owner" in page and world["alice"].username in page
    assert world["mallory"].username not in page.split('id="changelist-filter"')[1].split("</nav>")[0]


def test_messages_filter_by_companion_and_conversation(client, moderator, world):
    client.force_login(moderator)
    found, _ = listed(client, MESSAGES, {"conversation__companions__id__exact": world["rin"].pk})
    assert found == world["group_messages"]
    found, _ = listed(client, MESSAGES, {"conversation__id__exact": world["chat"].pk})
    assert found == set(world["chat"].messages.all())
    found, _ = listed(client, MESSAGES, {"conversation__kind": "group"})
    assert found == world["group_messages"]


def test_an_owner_without_rows_lists_nothing_not_everything(client, moderator, world, make_user):
    client.force_login(moderator)
    nobody = make_user(username="quiet")
    assert listed(client, MESSAGES, {"conversation__owner__id__exact": nobody.pk})[0] == set()
    assert listed(client, MESSAGES, {"conversation__owner__id__exact": 987654321})[0] == set()


def test_the_owners_username_is_a_lookup_too(client, moderator, world):
    client.force_login(moderator)
    found, _ = listed(client, MESSAGES, {"conversation__owner__username": "alice"})
    assert found == world["alices_messages"]
    found, _ = listed(client, RUNS, {"companion__owner__username": "alice"})
    assert found == {world["run"]}


def test_runs_filter_by_owner_companion_and_conversation(client, moderator, world):
    client.force_login(moderator)
    assert listed(client, RUNS, {"conversation__owner__id__exact": world["alice"].pk})[0] == {world["run"]}
    assert listed(client, RUNS, {"conversation__owner__id__exact": world["mallory"].pk})[0] == set()
    assert listed(client, RUNS, {"companion__id__exact": world["hana"].pk})[0] == {world["run"]}
    assert listed(client, RUNS, {"conversation__id__exact": world["group"].pk})[0] == set()


def test_conversations_filter_by_owner_and_companion(client, moderator, world):
    client.force_login(moderator)
    assert listed(client, CONVERSATIONS, {"owner__id__exact": world["alice"].pk})[0] == {
        world["chat"],
        world["group"],
    }
    assert listed(client, CONVERSATIONS, {"companions__id__exact": world["rin"].pk})[0] == {world["group"]}


def test_the_message_search_matches_the_owner_and_the_companions_too(client, moderator, world):
    client.force_login(moderator)
    assert listed(client, MESSAGES, {"q": "alice"})[0] >= world["alices_messages"] - {world["other"]}
    assert world["other"] not in listed(client, MESSAGES, {"q": "alice"})[0]
    assert listed(client, MESSAGES, {"q": "Rin"})[0] == world["group_messages"]
    assert listed(client, MESSAGES, {"q": "mallory's"})[0] == {world["other"]}
    assert listed(client, RUNS, {"q": "alice"})[0] == {world["run"]}


@pytest.mark.parametrize(
    "params",
    [
        {"conversation__owner__id__exact": "not-a-number"},
        {"conversation__owner__email": "alice@example.com"},  # not an allowed lookup
        {"conversation__owner__password__startswith": "pbkdf2"},
    ],
)
def test_bad_or_unlisted_lookups_are_refused(client, moderator, world, params):
    client.force_login(moderator)
    response = client.get(reverse(MESSAGES), params)
    # Django's answer to a bad filter: back to the list with ?e=1, or 400 for a lookup not allowed.
    assert response.status_code in (302, 400)
    if response.status_code == 302:
        assert response["Location"].endswith("?e=1")


def test_the_users_page_links_to_their_chats_with_counts(client, moderator, world):
    client.force_login(moderator)
    alice = world["alice"]
    page = client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()
    messages_url = f"{reverse(MESSAGES)}?conversation__owner__id__exact={alice.pk}"
    assert f'<a href="{reverse(CONVERSATIONS)}?owner__id__exact={alice.pk}">Conversations (2)</a>' in page
    assert f'<a href="{messages_url}">Messages ({len(world["alices_messages"])})</a>' in page
    assert f"?conversation__owner__id__exact={alice.pk}&quot;" not in page  # not escaped twice
    # The link leads to exactly the counted messages.
    assert (
        listed(client, MESSAGES, {"conversation__owner__id__exact": alice.pk})[0] == world["alices_messages"]
    )


def test_the_links_show_only_the_lists_the_viewer_may_open(client, make_user, world):
    viewer = make_user(username="support", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_user"), Permission.objects.get(codename="view_conversation")
    )
    client.force_login(viewer)
    page = client.get(reverse("admin:accounts_user_change", args=[world["alice"].pk])).content.decode()
    assert "Conversations (2)" in page
    assert "Messages (" not in page
    assert "Pipeline runs (" not in page
