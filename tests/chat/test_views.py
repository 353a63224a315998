"""The chat page, its form fallback and the older-messages JSON."""

import pytest
from django.urls import reverse

from chat.models import Conversation, Message, PipelineRun
from chat.selectors import HISTORY_PAGE
from tests.chat.factories import add_reply, make_chat
from tests.companions.factories import make_companion


@pytest.fixture
def companion(user):
    return make_companion(user)


@pytest.fixture
def chat(companion):
    return make_chat(companion)


def add_messages(chat, companion, count):
    return Message.objects.bulk_create(
        Message(
            conversation=chat,
            role="user" if n % 2 == 0 else "assistant",
            sender=None if n % 2 == 0 else companion,
            content=f"message {n}",
        )
        for n in range(count)
    )


def test_it_shows_the_latest_history_escaped(client, user, companion, chat):
    add_reply(chat, companion, "<script>alert(1)</script> *smiles*")
    client.force_login(user)
    response = client.get(reverse("chat:page", args=[companion.pk]))
    assert response.status_code == 200
    assert response.context["conversation"] == chat  # the companion's latest chat
    assert b"<script>alert(1)</script>" not in response.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.content
    assert b"<em>smiles</em>" in response.content
    assert f'data-ws-path="/ws/conversation/{chat.pk}/"'.encode() in response.content


def test_a_companion_without_a_chat_gets_one_that_opens_with_its_greeting(client, user, companion):
    client.force_login(user)
    response = client.get(reverse("chat:page", args=[companion.pk]))
    assert response.status_code == 200
    conversation = Conversation.objects.get()
    assert [(m.role, m.content) for m in response.context["history"]] == [("assistant", "Hey you!")]
    assert response.context["conversation"] == conversation
    client.get(reverse("chat:page", args=[companion.pk]))
    assert Conversation.objects.count() == 1  # the next visit opens the same chat


def test_it_has_the_run_status_and_error_block(client, user, companion):
    client.force_login(user)
    html = client.get(reverse("chat:page", args=[companion.pk])).content.decode()
    assert '<div class="run-status" data-run hidden>' in html and "data-progress-bar" in html
    assert "data-cancel>Cancel</button>" in html
    assert '<div class="alert alert-error run-error" data-error role="alert" hidden>' in html
    assert "data-retry hidden>Retry</button>" in html


def test_it_checks_owner(client, other_user, companion, chat):
    client.force_login(other_user)
    assert client.get(reverse("chat:page", args=[companion.pk])).status_code == 404
    assert client.get(reverse("chat:conversation", args=[chat.pk])).status_code == 404
    assert client.post(reverse("chat:send", args=[chat.pk]), {"content": "hi"}).status_code == 404
    assert client.get(reverse("chat:older", args=[chat.pk]), {"before": 1}).status_code == 404
    assert not Message.objects.exists()
    assert Conversation.objects.count() == 1  # no chat was started for the other user


def test_it_requires_login(client, companion):
    response = client.get(reverse("chat:page", args=[companion.pk]))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_the_form_fallback_stores_the_message_and_starts_a_run(
    client, user, companion, chat, django_capture_on_commit_callbacks
):
    client.force_login(user)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("chat:send", args=[chat.pk]), {"content": "hello", "image": "on"})
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:conversation", args=[chat.pk])
    run = PipelineRun.objects.get()
    assert run.turn.message.content == "hello" and run.want_image
    assert run.conversation == chat and run.companion == companion
    # The chain starts only after commit (the other callback refreshes the cached pages).
    assert [cb.__qualname__ for cb in callbacks if "start" in cb.__qualname__] == [
        "start_reply_run.<locals>.start"
    ]


def test_the_form_fallback_explains_a_refusal(client, user, companion, chat):
    client.force_login(user)
    response = client.post(reverse("chat:send", args=[chat.pk]), {"content": " "}, follow=True)
    assert b"Type a message first." in response.content
    assert not Message.objects.exists()


def test_it_rejects_get_on_send(client, user, companion, chat):
    client.force_login(user)
    assert client.get(reverse("chat:send", args=[chat.pk])).status_code == 405


def test_older_messages_page_backwards(client, user, companion, chat):
    rows = add_messages(chat, companion, HISTORY_PAGE + 5)
    client.force_login(user)
    page = client.get(reverse("chat:page", args=[companion.pk]))
    assert page.context["has_older"] is True
    oldest_shown = page.context["history"][0]
    data = client.get(reverse("chat:older", args=[chat.pk]), {"before": oldest_shown.pk}).json()
    assert [m["content"] for m in data["messages"]] == [r.content for r in rows[:5]]
    assert [m["sender"] and m["sender"]["name"] for m in data["messages"]] == [
        None if r.role == "user" else companion.name for r in rows[:5]
    ]
    assert data["has_older"] is False


@pytest.mark.parametrize(("count", "has_older"), [(HISTORY_PAGE, False), (HISTORY_PAGE + 1, True)])
def test_has_older_is_exact_at_the_page_boundary(client, user, companion, chat, count, has_older):
    rows = add_messages(chat, companion, count)
    client.force_login(user)
    assert client.get(reverse("chat:page", args=[companion.pk])).context["has_older"] is has_older
    data = client.get(reverse("chat:older", args=[chat.pk]), {"before": rows[-1].pk + 1}).json()
    assert data["has_older"] is has_older


@pytest.mark.parametrize("before", ["", "abc", "1.5", "-1", "0", " 7", "\u0663", "9" * 30, str(2**63)])
def test_older_needs_a_message_id(client, user, companion, chat, before):
    client.force_login(user)
    response = client.get(reverse("chat:older", args=[chat.pk]), {"before": before})
    assert response.status_code == 400
