"""Moderation of groups: the conversations admin, read-only members and messages, no add."""

import pytest
from django.urls import reverse

from chat.models import Conversation, Participant, PipelineRun
from chat.selectors import conversation_members
from tests.chat.factories import add_reply, add_user_message, make_chat, make_group
from tests.companions.factories import make_companion


@pytest.fixture
def admin_client(client, staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    return client


@pytest.fixture
def group(user):
    group = make_group(user)
    add_user_message(group, "a findable needle")
    add_reply(group, conversation_members(group)[0], "reply")
    return group


def test_groups_are_searchable_by_title_owner_and_member(admin_client, group, other_user):
    make_group(other_user, "Zed", "Yan", title="Elsewhere")
    url = reverse("admin:chat_conversation_changelist")
    for query in ("Beach", "alice", "Mika"):
        assert list(admin_client.get(url, {"q": query}).context["cl"].result_list) == [group], query


def test_groups_can_be_told_from_one_to_one_chats(admin_client, group, user):
    direct = make_chat(make_companion(user, name="Kei"), title="Just us")
    url = reverse("admin:chat_conversation_changelist")
    assert list(admin_client.get(url, {"kind__exact": "group"}).context["cl"].result_list) == [group]
    assert list(admin_client.get(url, {"kind__exact": "direct"}).context["cl"].result_list) == [direct]


def test_a_group_page_shows_its_members_and_messages_read_only(admin_client, group):
    page = admin_client.get(reverse("admin:chat_conversation_change", args=[group.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "a findable needle" in html and "Mika" in html and "Rin" in html
    assert 'name="messages-0-content"' not in html  # read-only inlines
    assert 'name="participants-0-companion"' not in html
    assert 'name="owner"' not in html and 'name="kind"' not in html


def test_a_conversation_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get(reverse("admin:chat_conversation_add")).status_code == 403
    assert not Conversation.objects.exists()


def test_the_admin_cannot_put_another_users_companion_in_a_group(admin_client, group, other_user):
    """Membership is the owner's business: the members inline takes no new rows, whatever is posted."""
    stranger = make_companion(other_user, name="Zed")
    url = reverse("admin:chat_conversation_change", args=[group.pk])
    data = {
        "title": "Renamed",
        "replies_per_turn": "",
        "participants-TOTAL_FORMS": "1",
        "participants-INITIAL_FORMS": "0",
        "participants-0-conversation": str(group.pk),
        "participants-0-companion": str(stranger.pk),
        "participants-0-position": "5",
        "messages-TOTAL_FORMS": "0",
        "messages-INITIAL_FORMS": "0",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302  # saved: the title is a moderator's to fix
    group.refresh_from_db()
    assert group.title == "Renamed"
    assert not Participant.objects.filter(companion=stranger).exists()
    assert [c.name for c in conversation_members(group)] == ["Mika", "Rin"]


def test_messages_are_searchable_and_filterable(admin_client, group):
    url = reverse("admin:chat_message_changelist")
    response = admin_client.get(url, {"q": "needle", "role__exact": "user"})
    assert response.status_code == 200
    assert [m.content for m in response.context["cl"].result_list] == ["a findable needle"]
    assert admin_client.get(url, {"q": "needle", "role__exact": "assistant"}).context["cl"].result_count == 0
    detail = admin_client.get(reverse("admin:chat_message_change", args=[group.messages.first().pk]))
    assert detail.status_code == 200


def test_non_staff_are_sent_to_the_admin_login(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:chat_conversation_changelist"))
    assert response.status_code == 302


def test_a_group_run_shows_in_the_run_admin(admin_client, group):
    said = group.messages.get(role="user")
    run = PipelineRun.objects.create(
        conversation=group, turn=said.turn, companion=conversation_members(group)[0], status="completed"
    )
    changelist = admin_client.get(reverse("admin:chat_pipelinerun_changelist"))
    assert changelist.status_code == 200 and b"Beach crew" in changelist.content
    assert admin_client.get(reverse("admin:chat_pipelinerun_change", args=[run.pk])).status_code == 200
