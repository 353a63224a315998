"""Group writes check membership themselves, whoever calls them."""

import pytest
from django.core.exceptions import ValidationError

from chat import conversations
from chat.models import Conversation
from chat.selectors import conversation_members
from tests.chat.factories import make_group
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db


def test_create_refuses_another_users_companion(user, other_user):
    mine = make_companion(user, name="Mika")
    theirs = make_companion(other_user, name="Theirs")
    with pytest.raises(ValidationError) as refused:
        conversations.group_create(user=user, title="Sneaky", companions=[mine, theirs])
    assert refused.value.code == "not_yours"
    assert not Conversation.objects.exists()


def test_update_refuses_another_users_companion(user, other_user):
    group = make_group(user)
    theirs = make_companion(other_user, name="Theirs")
    with pytest.raises(ValidationError) as refused:
        conversations.group_update(
            user=user,
            group=group,
            title="x",
            companions=[*conversation_members(group), theirs],
            replies_per_turn=None,
        )
    assert refused.value.code == "not_yours"
    assert theirs not in conversation_members(Conversation.objects.get())


def test_update_refuses_another_users_group(user, other_user):
    group = make_group(user)
    mine = [make_companion(other_user, name=name) for name in ("Zed", "Yan")]
    with pytest.raises(PermissionError):
        conversations.group_update(
            user=other_user, group=group, title="x", companions=mine, replies_per_turn=None
        )
    group.refresh_from_db()
    assert group.title == "Beach crew" and [c.name for c in conversation_members(group)] == ["Mika", "Rin"]


def test_update_changes_members_keeping_the_standing_order_by_id(user):
    group = make_group(user, "Mika", "Rin", "Aya")
    mika, _, aya = conversation_members(group)
    kei = make_companion(user, name="Kei")
    conversations.group_update(
        user=user, group=group, title="New", companions=[kei, aya, mika], replies_per_turn=2
    )
    group.refresh_from_db()
    assert (group.title, group.replies_per_turn) == ("New", 2)
    assert conversation_members(group) == [mika, aya, kei]
    assert list(group.participants.values_list("position", flat=True)) == [0, 1, 2]


@pytest.mark.parametrize(("count", "replies"), [(1, None), (7, None), (2, 3), (3, 0)])
def test_member_count_and_replies_are_bounded(user, count, replies):
    companions = [make_companion(user, name=f"C{i}") for i in range(count)]
    with pytest.raises(ValidationError):
        conversations.group_create(user=user, title="G", companions=companions, replies_per_turn=replies)


def test_create_keeps_members_and_replies(user):
    companions = [make_companion(user, name=f"C{i}") for i in range(3)]
    group = conversations.group_create(user=user, title="  Trio ", companions=companions, replies_per_turn=2)
    assert (group.title, group.kind, group.owner) == ("Trio", "group", user) and group.replies_per_turn == 2
    assert conversation_members(group) == companions


@pytest.mark.parametrize("title", ["Beach\x00crew", "Beach\ud800"], ids=["nul", "lone_surrogate"])
def test_a_title_the_database_cannot_store_is_refused(user, title):
    companions = [make_companion(user, name=f"C{i}") for i in range(2)]
    with pytest.raises(ValidationError) as refused:
        conversations.group_create(user=user, title=title, companions=companions)
    assert refused.value.code == "unstorable"
    assert not Conversation.objects.exists()
