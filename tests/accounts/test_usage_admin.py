"""The usage admin: per-user totals (sortable, quota editable) and read-only transactions (filterable)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from accounts import usage
from accounts.models import UsageTransaction, UserUsage
from tests.accounts.factories import charge
from tests.companions.factories import make_companion

USAGE_LIST = reverse("admin:accounts_userusage_changelist")
TRANSACTIONS = reverse("admin:accounts_usagetransaction_changelist")


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def carol(make_user):
    return make_user(username="carol")


@pytest.fixture
def two_users_usage(user, other_user, carol):
    mika = make_companion(user, name="Mika")
    rin = make_companion(user, name="Rin")
    two_months_ago = timezone.now() - dt.timedelta(days=62)
    charge(rin, 5000, two_months_ago)  # alice: 5,000 two months ago
    charge(mika, 100)  # alice: 100 this month
    charge(make_companion(other_user, name="Zed"), 300)  # mallory: 300 this month
    charge(make_companion(carol, name="Old"), 1000, two_months_ago)  # carol: nothing this month
    return mika, rin


def test_usage_per_user_sorts_by_this_month_and_lifetime(
    admin_client, two_users_usage, user, other_user, carol
):
    this_month = admin_client.get(USAGE_LIST, {"o": "-1"})  # column 1: tokens this month
    assert this_month.status_code == 200
    rows = list(this_month.context["cl"].result_list)
    assert [r.user for r in rows] == [other_user, user, carol]
    # carol's row still holds the old month's 1,000: it has not rolled over, and counts 0.
    assert [r.current_tokens for r in rows] == [300, 100, 0]
    lifetime = admin_client.get(USAGE_LIST, {"o": "-2"})
    assert [r.user for r in lifetime.context["cl"].result_list] == [user, carol, other_user]
    assert "unlimited (site default)" in lifetime.content.decode()


def test_the_quota_is_editable_from_the_list_without_touching_the_counters(
    admin_client, two_users_usage, other_user
):
    row = UserUsage.objects.get(user=other_user)
    form = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(row.pk),
        "form-0-quota_override": "5000",
        "_save": "Save",
    }
    charge(make_companion(other_user), 10)  # a run finishes while the moderator edits
    response = admin_client.post(USAGE_LIST, form)
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.quota_override == 5000
    assert row.lifetime_tokens == 310  # the run's 10 tokens were not overwritten
    assert usage.usage_summary(other_user).quota == 5000


def test_a_quota_can_be_set_for_a_user_who_has_not_chatted(admin_client, user):
    response = admin_client.post(
        reverse("admin:accounts_userusage_add"), {"user": user.pk, "quota_override": "0"}
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    row = UserUsage.objects.get(user=user)
    assert row.quota_override == 0 and row.lifetime_tokens == 0


def test_the_change_page_shows_the_help_for_the_quota(admin_client, two_users_usage, user):
    row = UserUsage.objects.get(user=user)
    response = admin_client.get(reverse("admin:accounts_userusage_change", args=[row.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Leave empty to use the site default" in page and "0 = unlimited" in page


def test_transactions_filter_by_user_companion_and_date(admin_client, two_users_usage, user, other_user):
    _, rin = two_users_usage
    response = admin_client.get(TRANSACTIONS)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 4
    by_user = admin_client.get(TRANSACTIONS, {"user__id__exact": other_user.pk})
    assert [t.companion_name for t in by_user.context["cl"].result_list] == ["Zed"]
    by_companion = admin_client.get(TRANSACTIONS, {"companion__id__exact": rin.pk})
    assert [t.total_tokens for t in by_companion.context["cl"].result_list] == [5000]
    today = timezone.now()
    by_month = admin_client.get(
        TRANSACTIONS, {"created_at__year": today.year, "created_at__month": today.month}
    )
    assert {t.companion_name for t in by_month.context["cl"].result_list} == {"Mika", "Zed"}


def test_transactions_are_read_only(admin_client, two_users_usage):
    row = UsageTransaction.objects.first()
    assert admin_client.get(reverse("admin:accounts_usagetransaction_add")).status_code == 403
    page = admin_client.get(reverse("admin:accounts_usagetransaction_change", args=[row.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    before = (row.prompt_tokens, row.completion_tokens)
    admin_client.post(
        reverse("admin:accounts_usagetransaction_change", args=[row.pk]), {"prompt_tokens": "1"}
    )
    row.refresh_from_db()
    assert (row.prompt_tokens, row.completion_tokens) == before


def test_staff_need_the_permission(client, make_user, two_users_usage):
    staff = make_user(username="helper", is_staff=True)
    client.force_login(staff)
    assert client.get(TRANSACTIONS).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_usagetransaction"))
    assert client.get(TRANSACTIONS).status_code == 200


def test_non_staff_are_sent_to_the_admin_login(client, user):
    client.force_login(user)
    response = client.get(USAGE_LIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_transactions_say_which_connection_and_model_served_them(admin_client, two_users_usage):
    UsageTransaction.objects.filter(companion_name="Zed").update(served_by="Local llama / gemma-3")
    response = admin_client.get(TRANSACTIONS, {"served_by": "Local llama / gemma-3"})
    assert [t.companion_name for t in response.context["cl"].result_list] == ["Zed"]
    assert "Local llama / gemma-3" in response.content.decode()
    searched = admin_client.get(TRANSACTIONS, {"q": "gemma"})
    assert [t.companion_name for t in searched.context["cl"].result_list] == ["Zed"]
