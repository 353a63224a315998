"""The owner's prompt view of a reply: what was sent, escaped; nobody else's; 404 without one."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from chat.admission import run_admit
from chat.models import PipelineRun
from chat.runs import run_create, run_mark_cancelled
from tests.chat.factories import add_reply, add_user_message, make_chat
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db

RECORD = {
    "messages": [
        {"role": "system", "content": "You are Mika. <script>alert(1)</script>"},
        {"role": "user", "content": "Hi <img src=x onerror=alert(2)>"},
    ],
    "parts": [
        {"part": "system", "tokens": 42},
        {"part": "lore", "tokens": 7},
        {"part": "history", "tokens": 0},
    ],
    "context_length": 8192,
    "reserve": 300,
    "margin": 64,
    "total": 61,
    "counter": "tokenizer",
    "lore": [{"book": "World <b>", "uid": 3, "comment": "The lamp", "reason": "key: lamp", "tokens": 7}],
    "lore_over_budget": [{"book": "World <b>", "uid": 4, "comment": "", "reason": "constant", "tokens": 900}],
    "memories": [{"id": 1, "text": "Alice's sister is Mara.", "score": 0.8, "pinned": True}],
    "summary_used": True,
    "history_start_id": None,
    "dropped_upto_id": None,
}


@pytest.fixture
def reply(user):
    companion = make_companion(user, name="Mika")
    conversation = make_chat(companion)
    message = add_user_message(conversation, "Hi")
    run = run_create(
        companion=companion,
        want_image=False,
        admission=run_admit(user, want_image=False),
        conversation=conversation,
        turn=message.turn,
    )
    answer = add_reply(conversation, companion, "Hello!")
    PipelineRun.objects.filter(pk=run.pk).update(reply=answer, prompt_record=RECORD)
    run_mark_cancelled(run.pk)
    return answer


def url(message) -> str:
    return reverse("chat:message_prompt", args=[message.conversation_id, message.pk])


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_shows_what_was_sent_escaped(user, reply):
    response = logged_in(user).get(url(reply))
    assert response.status_code == 200
    page = response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "World &lt;b&gt;" in page and "The lamp" in page and "key: lamp" in page
    assert "Alice&#x27;s sister is Mara." in page
    assert "8192" in page and "42" in page
    assert "The conversation's summary was used." in page
    assert "Counted with the model's own tokenizer." in page
    assert "Triggered but over the budget" in page


def test_it_checks_owner(reply, other_user):
    assert logged_in(other_user).get(url(reply)).status_code == 404


def test_a_message_without_a_record_is_not_found(user, reply):
    own_message = reply.conversation.messages.get(role="user")
    assert logged_in(user).get(url(own_message)).status_code == 404
    PipelineRun.objects.update(prompt_record={})
    assert logged_in(user).get(url(reply)).status_code == 404


def test_another_conversation_in_the_address_is_not_found(user, reply):
    other = make_chat(make_companion(user, name="Rin"))
    address = reverse("chat:message_prompt", args=[other.pk, reply.pk])
    assert logged_in(user).get(address).status_code == 404


def test_it_needs_a_login_and_rejects_post(user, reply):
    assert Client().get(url(reply)).status_code == 302
    assert logged_in(user).post(url(reply)).status_code == 405


def test_the_chat_page_offers_the_prompt_of_a_reply(user, reply):
    page = logged_in(user).get(reverse("chat:conversation", args=[reply.conversation_id])).content.decode()
    assert f"{reply.pk}/prompt/" in page
