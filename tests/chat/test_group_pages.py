"""Group pages: list, create, edit, delete and the chat page, for the owner only.

A group is a conversation of kind "group": its page is the one conversation
template, its no-JavaScript send form the conversation's.
"""

import pytest
from django.urls import reverse

from chat.models import Conversation, Message, PipelineRun
from chat.selectors import conversation_members
from tests.chat.factories import add_reply, add_user_message, make_group
from tests.companions.factories import make_companion


@pytest.fixture
def group(user):
    return make_group(user)


def test_the_list_shows_only_my_groups(client, user, other_user, group):
    make_group(other_user, "Zed", "Yan", title="Not mine")
    client.force_login(user)
    page = client.get(reverse("groups:list"))
    assert [g.title for g in page.context["groups"]] == ["Beach crew"]
    assert b"Not mine" not in page.content
    assert b"Mika" in page.content and b"Rin" in page.content


def test_the_navigation_links_to_groups(client, user):
    client.force_login(user)
    page = client.get(reverse("companions:list"))
    assert f'href="{reverse("groups:list")}">Groups<'.encode() in page.content


def test_a_group_is_created_from_two_of_my_companions(client, user):
    mika, rin = make_companion(user, name="Mika"), make_companion(user, name="Rin")
    client.force_login(user)
    response = client.post(
        reverse("groups:create"), {"title": "Trio", "companions": [mika.pk, rin.pk], "replies_per_turn": ""}
    )
    group = Conversation.objects.get()
    assert response.status_code == 302 and response.url == reverse("groups:page", args=[group.pk])
    assert (group.owner, group.kind, group.title, group.replies_per_turn) == (user, "group", "Trio", None)
    assert conversation_members(group) == [mika, rin]
    assert not group.messages.exists()  # a group has no greeting


def test_someone_elses_companion_cannot_be_added(client, user, other_user):
    mine = make_companion(user, name="Mika")
    theirs = make_companion(other_user, name="Theirs")
    client.force_login(user)
    response = client.post(reverse("groups:create"), {"title": "Sneaky", "companions": [mine.pk, theirs.pk]})
    assert response.status_code == 200
    assert "companions" in response.context["form"].errors
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    ("count", "replies", "field"),
    [
        (1, "", "companions"),
        (7, "", "companions"),
        (2, "3", "replies_per_turn"),
        (2, "0", "replies_per_turn"),
    ],
)
def test_the_form_checks_members_and_replies(client, user, count, replies, field):
    companions = [make_companion(user, name=f"C{i}") for i in range(count)]
    client.force_login(user)
    response = client.post(
        reverse("groups:create"),
        {"title": "G", "companions": [c.pk for c in companions], "replies_per_turn": replies},
    )
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not Conversation.objects.exists()


def test_the_title_is_required_and_capped(client, user):
    companions = [make_companion(user, name=f"C{i}") for i in range(2)]
    client.force_login(user)
    for title in ("", "x" * 101):
        response = client.post(
            reverse("groups:create"), {"title": title, "companions": [c.pk for c in companions]}
        )
        assert "title" in response.context["form"].errors
    assert not Conversation.objects.exists()


def test_edit_changes_title_members_and_replies(client, user, group):
    third = make_companion(user, name="Aya")
    client.force_login(user)
    assert client.get(reverse("groups:edit", args=[group.pk])).status_code == 200
    members = [conversation_members(group)[0].pk, third.pk]
    response = client.post(
        reverse("groups:edit", args=[group.pk]),
        {"title": "Renamed", "companions": members, "replies_per_turn": "1"},
    )
    assert response.status_code == 302
    group.refresh_from_db()
    assert group.title == "Renamed" and group.replies_per_turn == 1
    assert [c.pk for c in conversation_members(group)] == members  # by id, the standing order


def test_delete_asks_first_then_deletes_on_post(client, user, group):
    add_user_message(group, "hello")
    client.force_login(user)
    confirm = client.get(reverse("groups:delete", args=[group.pk]))
    assert confirm.status_code == 200 and b"Delete Beach crew" in confirm.content
    assert Conversation.objects.exists()
    response = client.post(reverse("groups:delete", args=[group.pk]))
    assert response.status_code == 302 and response.url == reverse("groups:list")
    assert not Conversation.objects.exists() and not Message.objects.exists()
    assert user.companions.count() == 2  # the companions stay


def test_the_chat_page_shows_history_with_sender_names(client, user, group):
    mika = conversation_members(group)[0]
    add_user_message(group, "Hi all <script>x</script>")
    add_reply(group, mika, "Hello *waves*")
    client.force_login(user)
    page = client.get(reverse("groups:page", args=[group.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<span class="sender-name">Mika</span>' in html
    assert "Hello <em>waves</em>" in html
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert f'data-companion-state="{mika.pk}"' in html


@pytest.mark.parametrize(
    "name", ["groups:page", "groups:edit", "groups:delete", "chat:conversation", "chat:delete"]
)
def test_another_users_group_is_404_on_every_page(client, other_user, group, name):
    client.force_login(other_user)
    url = reverse(name, args=[group.pk])
    assert client.get(url).status_code == 404
    if name not in ("groups:page", "chat:conversation"):  # the chat page is GET only
        assert client.post(url, {"title": "Hacked"}).status_code == 404
    group.refresh_from_db()
    assert group.title == "Beach crew"


@pytest.mark.parametrize("name", ["groups:list", "groups:create"])
def test_pages_need_a_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and "login" in response.url


def test_the_form_fallback_sends_a_message_and_starts_the_turn(client, user, group):
    client.force_login(user)
    response = client.post(reverse("chat:send", args=[group.pk]), {"content": "Hi Rin"})
    assert response.status_code == 302 and response.url == reverse("chat:conversation", args=[group.pk])
    message = Message.objects.get()
    mika, rin = conversation_members(group)
    assert (message.content, message.role, message.turn.order) == ("Hi Rin", "user", [rin.pk, mika.pk])
    [run] = PipelineRun.objects.filter(turn=message.turn)
    assert (run.companion, run.conversation, run.status) == (rin, group, "queued")


def test_the_form_fallback_refuses_an_empty_message(client, user, group):
    client.force_login(user)
    response = client.post(reverse("chat:send", args=[group.pk]), {"content": "  "}, follow=True)
    assert b"Type a message first." in response.content
    assert not Message.objects.exists()


def test_the_chat_page_talks_over_the_conversation_socket(client, user, group):
    client.force_login(user)
    for name in ("groups:page", "chat:conversation"):  # the same page either way
        html = client.get(reverse(name, args=[group.pk])).content.decode()
        assert f'data-ws-path="/ws/conversation/{group.pk}/"' in html and 'data-mode="group"' in html
        assert "js/chat/main.js" in html


def test_the_chat_page_has_the_run_status_and_error_block(client, user, group):
    client.force_login(user)
    html = client.get(reverse("groups:page", args=[group.pk])).content.decode()
    assert '<div class="run-status" data-run hidden>' in html and "data-progress-bar" in html
    assert "data-cancel>Stop replies</button>" in html  # the whole turn stops, not one reply
    assert '<div class="alert alert-error run-error" data-error role="alert" hidden>' in html
    assert "data-retry hidden>Retry</button>" in html
