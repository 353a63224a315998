"""The chat page shows a reply's reasoning only on demand, escaped, without any script."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.chat.factories import add_reply, add_user_message, make_chat, make_group
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db


def test_the_page_shows_reasoning_in_a_collapsed_disclosure_escaped(client, user):
    companion = make_companion(user)
    chat = make_chat(companion)
    add_user_message(chat, "Hi")
    add_reply(chat, companion, "Hello!", reasoning="<script>alert(1)</script> Be kind.")
    client.force_login(user)
    html = client.get(reverse("chat:page", args=[companion.pk])).content.decode()
    assert html.count('<details class="reasoning">') == 1  # not under the user's message
    assert '<details class="reasoning"><summary>Show reasoning</summary>' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Be kind." in html
    assert "<script>alert(1)</script>" not in html
    assert "<details open" not in html


def test_a_group_reply_shows_its_reasoning_too(client, user):
    group = make_group(user, "Mika", "Rin")
    mika, rin = (p.companion for p in group.participants.all())
    add_user_message(group, "Hi both")
    add_reply(group, mika, "Hello!", reasoning="Wave first.")
    add_reply(group, rin, "Hey.")
    client.force_login(user)
    html = client.get(reverse("groups:page", args=[group.pk])).content.decode()
    assert html.count('<details class="reasoning">') == 1
    assert "Wave first." in html


def test_a_reply_without_reasoning_has_no_disclosure(client, user):
    companion = make_companion(user)
    add_reply(make_chat(companion), companion, "Hello!")
    client.force_login(user)
    assert "Show reasoning" not in client.get(reverse("chat:page", args=[companion.pk])).content.decode()


def test_older_pages_carry_each_replys_reasoning(client, user):
    companion = make_companion(user)
    chat = make_chat(companion)
    thought = add_reply(chat, companion, "Hi", reasoning="Be kind.")
    plain = add_reply(chat, companion, "Hello")
    newest = add_user_message(chat, "Hey")
    client.force_login(user)
    page = client.get(reverse("chat:older", args=[chat.pk]), {"before": newest.pk}).json()
    assert {m["id"]: m["reasoning"] for m in page["messages"]} == {thought.pk: "Be kind.", plain.pk: ""}
