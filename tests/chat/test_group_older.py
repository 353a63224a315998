"""A group's older messages as JSON (``?before=<message id>``), for the group's owner only.

A group pages through ``chat:older`` like every conversation; each entry names its sender.
"""

import pytest
from django.urls import reverse

from chat.models import Message
from chat.selectors import HISTORY_PAGE, conversation_members
from companions.models import Companion
from media.services import store_image
from tests.chat.factories import add_reply, add_user_message, make_group
from tests.companions.factories import make_companion, png_bytes


@pytest.fixture
def group(user):
    return make_group(user, "Mika", "Rin")


def add_messages(group, count):
    """Every third message the user's, the rest the members' in turn."""
    members = conversation_members(group)
    return Message.objects.bulk_create(
        Message(
            conversation=group,
            sender=None if n % 3 == 0 else members[n % len(members)],
            role="user" if n % 3 == 0 else "assistant",
            content=f"message {n}",
        )
        for n in range(count)
    )


def older(client, group, before):
    return client.get(reverse("chat:older", args=[group.pk]), {"before": before})


def test_it_pages_backwards_to_the_first_message(client, user, group):
    rows = add_messages(group, 2 * HISTORY_PAGE + 5)
    client.force_login(user)
    page = client.get(reverse("groups:page", args=[group.pk]))
    assert page.context["has_older"] is True
    assert [m.pk for m in page.context["history"]] == [r.pk for r in rows[-HISTORY_PAGE:]]
    assert b"data-older" in page.content
    assert f'data-older-url="{reverse("chat:older", args=[group.pk])}"'.encode() in page.content

    data = older(client, group, page.context["history"][0].pk).json()
    assert [m["id"] for m in data["messages"]] == [r.pk for r in rows[5 : HISTORY_PAGE + 5]]
    assert data["has_older"] is True

    data = older(client, group, data["messages"][0]["id"]).json()
    assert [m["content"] for m in data["messages"]] == [f"message {n}" for n in range(5)]
    assert data["has_older"] is False


@pytest.mark.parametrize(("count", "has_older"), [(HISTORY_PAGE, False), (HISTORY_PAGE + 1, True)])
def test_has_older_is_exact_at_the_page_boundary(client, user, group, count, has_older):
    add_messages(group, count)
    client.force_login(user)
    page = client.get(reverse("groups:page", args=[group.pk]))
    assert page.context["has_older"] is has_older
    assert (b"data-older>" in page.content) is has_older
    last_id = Message.objects.order_by("-pk").first().pk
    assert older(client, group, last_id + 1).json()["has_older"] is has_older


def test_each_message_names_its_sender(client, user, group, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    mika, rin = conversation_members(group)
    header = store_image(png_bytes(), mika, "header")
    Companion.objects.filter(pk=mika.pk).update(header_image=header)
    gone = make_companion(user, name="Aya")
    rows = [
        add_user_message(group, "hello all"),
        add_reply(group, mika, "hi!", reasoning="Be friendly."),
        add_reply(group, rin, "yo", is_complete=False),
        # Aya spoke, then left the group: her messages still say who she is.
        add_reply(group, gone, "bye"),
    ]
    client.force_login(user)
    messages = older(client, group, rows[-1].pk + 1).json()["messages"]
    assert [(m["role"], m["sender"]) for m in messages] == [
        ("user", None),
        ("assistant", {"id": mika.pk, "name": "Mika", "avatar_url": header.url}),
        ("assistant", {"id": rin.pk, "name": "Rin", "avatar_url": None}),
        ("assistant", {"id": gone.pk, "name": "Aya", "avatar_url": None}),
    ]
    assert [m["complete"] for m in messages] == [True, True, False, True]
    assert [m["reasoning"] for m in messages] == ["", "Be friendly.", "", ""]
    assert messages[0].keys() >= {"id", "content", "created_at", "image_url"}


def test_markup_comes_back_as_text(client, user, group):
    row = add_user_message(group, "<script>alert(1)</script>")
    client.force_login(user)
    response = older(client, group, row.pk + 1)
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.json()["messages"][0]["content"] == "<script>alert(1)</script>"


def test_the_query_count_does_not_grow_with_the_page(client, user, group, django_assert_num_queries):
    add_messages(group, HISTORY_PAGE + 1)
    client.force_login(user)
    # Session and user, the conversation, its members, one page with senders and pictures joined in.
    with django_assert_num_queries(5):
        data = older(client, group, 10**9).json()
    assert len(data["messages"]) == HISTORY_PAGE


def test_it_checks_owner(client, other_user, group):
    row = add_user_message(group, "private words")
    client.force_login(other_user)
    response = older(client, group, row.pk + 1)
    assert response.status_code == 404
    assert b"private words" not in response.content


def test_it_requires_login(client, group):
    response = older(client, group, 1)
    assert response.status_code == 302 and "/login" in response.url


def test_it_rejects_post(client, user, group):
    client.force_login(user)
    assert client.post(reverse("chat:older", args=[group.pk]), {"before": 1}).status_code == 405


@pytest.mark.parametrize("before", ["", "abc", "1.5", "-1", "0", " 7", "+7", "\u0663", "9" * 30, str(2**63)])
def test_a_bad_before_is_refused_with_400(client, user, group, before):
    add_messages(group, 3)
    client.force_login(user)
    response = older(client, group, before)
    assert response.status_code == 400
    assert response.json() == {"error": "before must be a message id"}


def test_before_missing_is_refused_with_400(client, user, group):
    client.force_login(user)
    response = client.get(reverse("chat:older", args=[group.pk]))
    assert response.status_code == 400


def test_another_groups_message_id_pages_only_this_group(client, user, other_user, group):
    mine = add_messages(group, 3)
    theirs = make_group(other_user, "Zed", "Yan", title="Theirs")
    secret = add_user_message(theirs, "their words")
    my_other = make_group(user, "Kei", "Lu", title="Also mine")
    add_user_message(my_other, "other group")
    client.force_login(user)
    for foreign in (secret.pk, Message.objects.latest("pk").pk):
        data = older(client, group, foreign).json()
        assert [m["id"] for m in data["messages"]] == [m.pk for m in mine]
        assert data["has_older"] is False


def test_the_largest_id_gives_the_latest_page(client, user, group):
    rows = add_messages(group, 3)
    client.force_login(user)
    data = older(client, group, 2**63 - 1).json()
    assert [m["id"] for m in data["messages"]] == [r.pk for r in rows]
