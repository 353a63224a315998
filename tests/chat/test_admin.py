"""Moderation: messages and runs in the admin, with the circuit breakers' state."""

import pytest
from django.urls import reverse

from chat.admission import run_admit
from chat.backends import llm_breaker
from chat.runs import run_create, run_mark_failed
from tests.chat.factories import add_user_message, make_chat
from tests.companions.factories import make_companion


@pytest.fixture
def run(user):
    companion = make_companion(user)
    chat = make_chat(companion)
    message = add_user_message(chat, "a findable needle")
    run = run_create(
        companion=companion,
        want_image=False,
        admission=run_admit(user, want_image=False),
        conversation=chat,
        turn=message.turn,
    )
    assert run_mark_failed(run.pk, code="server", text="HTTP 500")
    run.refresh_from_db()
    return run


def test_messages_are_searchable_and_filterable(client, staff_user, run, django_user_model):
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    response = client.get(reverse("admin:chat_message_changelist"), {"q": "needle", "role": "user"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [run.turn.message]


def test_failed_runs_show_their_error_and_the_breakers(client, staff_user, run):
    staff_user.is_superuser = True
    staff_user.save()
    breaker = llm_breaker()
    breaker.reset()
    for _ in range(5):
        breaker.record_failure()
    client.force_login(staff_user)
    response = client.get(reverse("admin:chat_pipelinerun_changelist"), {"status": "failed"})
    assert list(response.context["cl"].result_list) == [run]
    assert b"<strong>llm</strong> open" in response.content
    client.post(
        reverse("admin:chat_pipelinerun_changelist"),
        {"action": "reset_circuit_breakers", "_selected_action": [str(run.pk)]},
    )
    assert breaker.status().state == "closed"


def test_non_staff_cannot_moderate(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:chat_message_changelist"))
    assert response.status_code == 302


def test_message_search_uses_the_full_text_index(client, staff_user, run):
    """The admin's search is the site's: a prefix finds the word, across every user's messages;
    the old ``icontains`` would also have matched the middle of a word."""
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    changelist = reverse("admin:chat_message_changelist")
    assert list(client.get(changelist, {"q": "findab"}).context["cl"].result_list) == [run.turn.message]
    assert list(client.get(changelist, {"q": "eedle"}).context["cl"].result_list) == []
