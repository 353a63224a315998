"""Group writes check membership themselves, whoever calls them."""

import pytest
from django.core.exceptions import ValidationError

from groups import services
from groups.models import GroupChat
from tests.companions.factories import make_companion
from tests.groups.factories import make_group

pytestmark = pytest.mark.django_db


def test_create_refuses_another_users_companion(user, other_user):
    mine = make_companion(user, name="Mika")
    theirs = make_companion(other_user, name="Theirs")
    with pytest.raises(ValidationError) as refused:
        services.group_create(user=user, title="Sneaky", companions=[mine, theirs])
    assert refused.value.code == "not_yours"
    assert not GroupChat.objects.exists()


def test_update_refuses_another_users_companion(user, other_user):
    group = make_group(user)
    theirs = make_companion(other_user, name="Theirs")
    with pytest.raises(ValidationError):
        services.group_update(
            group=group, title="x", companions=[*group.companions.all(), theirs], replies_per_turn=None
        )
    assert theirs not in GroupChat.objects.get().companions.all()


@pytest.mark.parametrize(("count", "replies"), [(1, None), (7, None), (2, 3), (3, 0)])
def test_member_count_and_replies_are_bounded(user, count, replies):
    companions = [make_companion(user, name=f"C{i}") for i in range(count)]
    with pytest.raises(ValidationError):
        services.group_create(user=user, title="G", companions=companions, replies_per_turn=replies)


def test_create_keeps_members_and_replies(user):
    companions = [make_companion(user, name=f"C{i}") for i in range(3)]
    group = services.group_create(user=user, title="  Trio ", companions=companions, replies_per_turn=2)
    assert group.title == "Trio" and group.replies_per_turn == 2
    assert group.companions.count() == 3


@pytest.mark.parametrize("title", ["Beach\x00crew", "Beach\ud800"], ids=["nul", "lone_surrogate"])
def test_a_title_the_database_cannot_store_is_refused(user, title):
    companions = [make_companion(user, name=f"C{i}") for i in range(2)]
    with pytest.raises(ValidationError) as refused:
        services.group_create(user=user, title=title, companions=companions)
    assert refused.value.code == "unstorable"
    assert not GroupChat.objects.exists()
