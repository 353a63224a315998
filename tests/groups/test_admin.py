"""Moderation: groups with their conversation read-only, messages searchable and filterable."""

import pytest
from django.urls import reverse

from groups.models import GroupMessage
from tests.groups.factories import make_group


@pytest.fixture
def admin_client(client, staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    return client


@pytest.fixture
def group(user):
    group = make_group(user)
    GroupMessage.objects.create(group=group, content="a findable needle")
    GroupMessage.objects.create(group=group, sender=group.companions.first(), is_bot=True, content="reply")
    return group


def test_groups_are_searchable_by_title_and_creator(admin_client, group, other_user):
    make_group(other_user, "Zed", "Yan", title="Elsewhere")
    url = reverse("admin:groups_groupchat_changelist")
    assert list(admin_client.get(url, {"q": "Beach"}).context["cl"].result_list) == [group]
    assert list(admin_client.get(url, {"q": "alice"}).context["cl"].result_list) == [group]


def test_a_group_page_shows_its_messages_read_only(admin_client, group):
    page = admin_client.get(reverse("admin:groups_groupchat_change", args=[group.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "a findable needle" in html
    assert 'name="messages-0-content"' not in html  # read-only inline


def test_messages_are_searchable_and_filterable(admin_client, group):
    url = reverse("admin:groups_groupmessage_changelist")
    response = admin_client.get(url, {"q": "needle", "is_bot__exact": "0"})
    assert response.status_code == 200
    assert [m.content for m in response.context["cl"].result_list] == ["a findable needle"]
    detail = admin_client.get(reverse("admin:groups_groupmessage_change", args=[group.messages.first().pk]))
    assert detail.status_code == 200


def test_non_staff_are_sent_to_the_admin_login(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:groups_groupchat_changelist"))
    assert response.status_code == 302


def test_a_group_run_shows_in_the_run_admin(admin_client, group):
    from chat.models import PipelineRun

    message = group.messages.get(is_bot=False)
    run = PipelineRun.objects.create(
        companion=group.companions.first(), group=group, group_user_message=message, status="completed"
    )
    changelist = admin_client.get(reverse("admin:chat_pipelinerun_changelist"))
    assert changelist.status_code == 200 and b"Beach crew" in changelist.content
    assert admin_client.get(reverse("admin:chat_pipelinerun_change", args=[run.pk])).status_code == 200


def test_the_admin_cannot_put_another_users_companion_in_a_group(group, other_user):
    from groups.admin import GroupChatAdminForm
    from tests.companions.factories import make_companion

    stranger = make_companion(other_user, name="Zed")
    mine = list(group.companions.all())
    data = {
        "title": group.title,
        "creator": group.creator.pk,
        "companions": [mine[0].pk, stranger.pk],
    }
    form = GroupChatAdminForm(data=data, instance=group)
    assert not form.is_valid()
    assert "Zed" in str(form.errors["companions"])
    form = GroupChatAdminForm(data={**data, "companions": [c.pk for c in mine]}, instance=group)
    assert "companions" not in form.errors
