"""The profile page shows this month's usage, the lifetime total, the quota and a per-day chart."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import usage
from accounts.models import UserUsage
from tests.accounts.factories import charge
from tests.companions.factories import make_companion

PROFILE = reverse("accounts:profile")
NOW = dt.datetime(2026, 2, 6, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def fixed_now(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


def usage_section(response) -> str:
    html = response.content.decode()
    return html[html.index('id="usage"') : html.index('id="api-tokens"')]


def test_a_new_user_sees_zero_and_no_limit(client, user, fixed_now):
    client.force_login(user)
    section = usage_section(client.get(PROFILE))
    assert 'data-usage="period">0 tokens' in section
    assert 'data-usage="quota">none' in section
    assert "<meter" not in section
    assert "1 March 2026" in section  # when the month's count starts again
    assert "<rect" not in section


def test_it_shows_the_month_the_lifetime_and_a_chart_per_day(client, user, fixed_now, settings):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 10_000
    companion = make_companion(user)
    charge(companion, 5000, dt.datetime(2026, 1, 20, tzinfo=dt.UTC))  # last month
    charge(companion, 1200, dt.datetime(2026, 2, 2, 10, tzinfo=dt.UTC))
    charge(companion, 300, dt.datetime(2026, 2, 5, 10, tzinfo=dt.UTC))
    client.force_login(user)
    section = usage_section(client.get(PROFILE))
    assert 'data-usage="period">1,500 tokens' in section
    assert 'data-usage="lifetime">6,500 tokens' in section
    assert 'data-usage="quota">10,000 tokens' in section
    assert "15% of this month\u2019s limit used" in section
    assert 'max="10000"' in section and 'value="1500"' in section
    # The chart: an accessible SVG with one bar per day that had usage, the tallest for the busiest day.
    assert 'role="img"' in section and 'aria-labelledby="usage-chart-title usage-chart-desc"' in section
    assert "Tokens per day, February 2026" in section
    bars = re.findall(r'<rect class="usage-bar"[^>]*height="([\d.]+)"><title>([^<]+)</title>', section)
    assert [label for _, label in bars] == ["2 February: 1,200 tokens", "5 February: 300 tokens"]
    assert float(bars[0][0]) == 4 * float(bars[1][0])
    # The numbers are in text too.
    assert "2 February: 1,200." in section and "<td>5 February</td><td>300</td>" in section


def test_over_the_limit_the_page_says_replies_are_paused(client, user, fixed_now, settings):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    UserUsage.objects.create(user=user, period_start=dt.date(2026, 2, 1), tokens_this_period=250)
    client.force_login(user)
    section = usage_section(client.get(PROFILE))
    assert "100% of this month\u2019s limit used: new replies are paused" in section


def test_a_personal_limit_replaces_the_site_default(client, user, fixed_now, settings):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    UserUsage.objects.create(user=user, period_start=dt.date(2026, 2, 1), quota_override=0)
    client.force_login(user)
    assert 'data-usage="quota">none' in usage_section(client.get(PROFILE))


def test_it_shows_only_the_users_own_usage(client, user, other_user, fixed_now):
    charge(make_companion(other_user), 999, dt.datetime(2026, 2, 3, tzinfo=dt.UTC))
    client.force_login(user)
    section = usage_section(client.get(PROFILE))
    assert "999" not in section and 'data-usage="lifetime">0 tokens' in section


def test_the_chart_spans_the_whole_month():
    days = [(dt.date(2026, 2, 1), 0), (dt.date(2026, 2, 2), 50)]
    bars, width = usage.usage_chart(days)
    assert width == 28 * usage.CHART_SLOT
    assert bars[0].height == 0 and bars[1].y + bars[1].height == usage.CHART_BASELINE
    assert usage.usage_chart([]) == ([], 31 * usage.CHART_SLOT)
