"""The chat page shows a reply's reasoning only on demand, escaped, without any script."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Message
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db


def test_the_page_shows_reasoning_in_a_collapsed_disclosure_escaped(client, user):
    companion = make_companion(user)
    Message.objects.create(companion=companion, role="user", content="Hi")
    Message.objects.create(
        companion=companion,
        role="assistant",
        content="Hello!",
        reasoning="<script>alert(1)</script> Be kind.",
    )
    client.force_login(user)
    html = client.get(reverse("chat:page", args=[companion.pk])).content.decode()
    assert html.count('<details class="reasoning">') == 1  # not under the user's message
    assert '<details class="reasoning"><summary>Show reasoning</summary>' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Be kind." in html
    assert "<script>alert(1)</script>" not in html
    assert "<details open" not in html


def test_a_reply_without_reasoning_has_no_disclosure(client, user):
    companion = make_companion(user)
    Message.objects.create(companion=companion, role="assistant", content="Hello!")
    client.force_login(user)
    assert "Show reasoning" not in client.get(reverse("chat:page", args=[companion.pk])).content.decode()


def test_older_pages_carry_each_replys_reasoning(client, user):
    companion = make_companion(user)
    thought = Message.objects.create(
        companion=companion, role="assistant", content="Hi", reasoning="Be kind."
    )
    plain = Message.objects.create(companion=companion, role="assistant", content="Hello")
    newest = Message.objects.create(companion=companion, role="user", content="Hey")
    client.force_login(user)
    page = client.get(reverse("chat:older", args=[companion.pk]), {"before": newest.pk}).json()
    assert {m["id"]: m["reasoning"] for m in page["messages"]} == {thought.pk: "Be kind.", plain.pk: ""}
