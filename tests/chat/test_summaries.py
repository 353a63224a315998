"""The rolling summary (``chat.summaries``): incremental passes, an edited summary kept, the
user's edits on the chat page, and what it costs."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import UsageTransaction
from chat import summaries
from chat.after_turn import AfterTurnCall
from chat.memory_prompts import SUMMARY_MARKER
from chat.models import Conversation, Message, PipelineRun, Turn
from tests.chat.factories import add_exchange, make_chat

pytestmark = pytest.mark.django_db


@pytest.fixture
def long_chat(companion):
    conversation = make_chat(companion)
    for i in range(30):
        add_exchange(conversation, companion, f"user line {i}", f"reply line {i}")
    return conversation


def ids(conversation):
    return list(Message.objects.filter(conversation=conversation).order_by("pk").values_list("pk", flat=True))


def completed_run(conversation, companion, *, dropped):
    turn = Turn.objects.filter(conversation=conversation).order_by("-pk").first()
    return PipelineRun.objects.create(
        conversation=conversation,
        turn=turn,
        companion=companion,
        status=PipelineRun.Status.COMPLETED,
        prompt_record={"dropped_upto_id": dropped},
    )


def summary_requests(fake):
    return [r["json"] for r in fake.requests if SUMMARY_MARKER in str(r["json"])]


@pytest.fixture
def summarising(use_fake_llm, memory_work):
    use_fake_llm.answer_when(SUMMARY_MARKER, "SUMMARY ONE")
    return use_fake_llm


def test_a_pass_summarises_up_to_a_little_past_the_dropped_message(summarising, long_chat, companion):
    messages = ids(long_chat)
    run = completed_run(long_chat, companion, dropped=messages[9])
    summaries.summarize_after_turn(run.pk)
    long_chat.refresh_from_db()
    assert long_chat.summary == "SUMMARY ONE"
    assert long_chat.summary_upto_id == messages[9 + summaries.SUMMARY_LOOKAHEAD]
    [request] = summary_requests(summarising)
    prompt = request["messages"][1]["content"]
    # Message 9 is "reply line 4"; eight more end at "reply line 8".
    assert "Alice: user line 0" in prompt and "Mika: reply line 8" in prompt
    assert "user line 9" not in prompt
    # Charged to the owner as a row of its own.
    [charge] = UsageTransaction.objects.filter(run=None)
    assert charge.run_status == "summary" and charge.user_id == companion.owner_id
    assert charge.prompt_tokens > 0 and charge.completion_tokens > 0


def test_a_covered_dropped_message_makes_no_call(summarising, long_chat, companion):
    messages = ids(long_chat)
    summaries.summarize_after_turn(completed_run(long_chat, companion, dropped=messages[9]).pk)
    summaries.summarize_after_turn(completed_run(long_chat, companion, dropped=messages[12]).pk)
    assert len(summary_requests(summarising)) == 1


def test_the_next_pass_folds_the_previous_summary_and_only_the_new_messages(
    summarising, long_chat, companion
):
    messages = ids(long_chat)
    summaries.summarize_after_turn(completed_run(long_chat, companion, dropped=messages[9]).pk)
    summarising.answer_when(SUMMARY_MARKER, "SUMMARY TWO")
    summaries.summarize_after_turn(completed_run(long_chat, companion, dropped=messages[25]).pk)
    long_chat.refresh_from_db()
    assert long_chat.summary == "SUMMARY TWO"
    second = summary_requests(summarising)[-1]["messages"][1]["content"]
    assert "SUMMARY ONE" in second and "user line 0" not in second and "line 13" in second


def test_an_edited_summary_is_kept_and_extended(summarising, long_chat, companion, user):
    messages = ids(long_chat)
    summaries.conversation_set_summary(user=user, conversation=long_chat, text="Alice and Mika met in Rome.")
    summaries.summarize_after_turn(completed_run(long_chat, companion, dropped=messages[9]).pk)
    long_chat.refresh_from_db()
    assert long_chat.summary == "Alice and Mika met in Rome.\n\nSUMMARY ONE"
    system = summary_requests(summarising)[-1]["messages"][0]["content"]
    assert "kept exactly as it is" in system
    summarising.answer_when(SUMMARY_MARKER, "SUMMARY TWO")
    summaries.summarize_after_turn(completed_run(long_chat, companion, dropped=messages[25]).pk)
    long_chat.refresh_from_db()
    assert long_chat.summary == "Alice and Mika met in Rome.\n\nSUMMARY ONE\n\nSUMMARY TWO"


def test_an_edit_during_a_pass_is_not_clobbered(summarising, long_chat, companion, user, monkeypatch):
    messages = ids(long_chat)
    real = AfterTurnCall.complete

    def edit_meanwhile(self, llm, messages_, *, max_tokens):
        summaries.conversation_set_summary(user=user, conversation=long_chat, text="My own words.")
        return real(self, llm, messages_, max_tokens=max_tokens)

    monkeypatch.setattr(AfterTurnCall, "complete", edit_meanwhile)
    summaries.summarize_after_turn(completed_run(long_chat, companion, dropped=messages[9]).pk)
    long_chat.refresh_from_db()
    assert long_chat.summary == "My own words." and long_chat.summary_upto_id is None


def test_a_long_stretch_is_read_in_bounded_chunks(summarising, long_chat, companion, settings):
    settings.SUMMARY_CHUNK_TOKENS = 50
    settings.SUMMARY_MAX_CHUNKS = 3
    messages = ids(long_chat)
    summaries.summarize_after_turn(completed_run(long_chat, companion, dropped=messages[40]).pk)
    requests = summary_requests(summarising)
    assert len(requests) == 3
    long_chat.refresh_from_db()
    assert messages[0] < long_chat.summary_upto_id < messages[40]  # the next turn goes on from there
    assert "SUMMARY ONE" in requests[1]["messages"][1]["content"]


def test_a_failing_summary_call_changes_nothing(use_fake_llm, memory_work, long_chat, companion):
    use_fake_llm.answer_when(SUMMARY_MARKER, status=500)
    summaries.summarize_after_turn(completed_run(long_chat, companion, dropped=ids(long_chat)[9]).pk)
    long_chat.refresh_from_db()
    assert long_chat.summary == "" and long_chat.summary_upto_id is None
    assert not UsageTransaction.objects.filter(run=None).exists()


def test_nothing_happens_when_summaries_are_off_or_the_run_did_not_complete(
    summarising, long_chat, companion, settings
):
    run = completed_run(long_chat, companion, dropped=ids(long_chat)[9])
    PipelineRun.objects.filter(pk=run.pk).update(status=PipelineRun.Status.CANCELLED)
    summaries.summarize_after_turn(run.pk)
    PipelineRun.objects.filter(pk=run.pk).update(status=PipelineRun.Status.COMPLETED)
    settings.MEMORY_SUMMARY_ENABLED = False
    summaries.summarize_after_turn(run.pk)
    assert summary_requests(summarising) == []


@pytest.mark.parametrize(
    "record", [{}, {"dropped_upto_id": None}, {"dropped_upto_id": "x"}, {"dropped_upto_id": True}]
)
def test_a_run_with_nothing_dropped_makes_no_call(summarising, long_chat, companion, record):
    run = completed_run(long_chat, companion, dropped=None)
    PipelineRun.objects.filter(pk=run.pk).update(prompt_record=record)
    summaries.summarize_after_turn(run.pk)
    assert summary_requests(summarising) == []


# --- the chat page --------------------------------------------------------------------


def url(conversation):
    return reverse("chat:summary", args=[conversation.pk])


@pytest.fixture
def owner_client(user):
    client = Client()
    client.force_login(user)
    return client


def test_the_page_shows_the_summary_form(owner_client, long_chat):
    Conversation.objects.filter(pk=long_chat.pk).update(summary="They met in Rome.")
    html = owner_client.get(reverse("chat:conversation", args=[long_chat.pk])).content.decode()
    assert url(long_chat) in html and "They met in Rome." in html and "csrfmiddlewaretoken" in html


def test_the_owner_edits_the_summary(owner_client, long_chat):
    response = owner_client.post(url(long_chat), {"summary": "  They met in Rome.  "}, follow=True)
    assert "Summary saved." in response.content.decode()
    long_chat.refresh_from_db()
    assert long_chat.summary == "They met in Rome." and long_chat.summary_edited_at is not None


def test_an_empty_summary_clears_it(owner_client, long_chat):
    Conversation.objects.filter(pk=long_chat.pk).update(summary="old", summary_upto_id=ids(long_chat)[5])
    owner_client.post(url(long_chat), {"summary": ""})
    long_chat.refresh_from_db()
    assert (long_chat.summary, long_chat.summary_upto_id, long_chat.summary_edited_at) == ("", None, None)


def test_a_too_long_summary_is_refused_with_a_clear_message(owner_client, long_chat):
    text = "x" * (summaries.SUMMARY_MAX_CHARS + 1)
    response = owner_client.post(url(long_chat), {"summary": text}, follow=True)
    assert "at most 8000 characters" in response.content.decode()
    long_chat.refresh_from_db()
    assert long_chat.summary == ""


def test_it_checks_the_owner(other_user, long_chat):
    client = Client()
    client.force_login(other_user)
    assert client.post(url(long_chat), {"summary": "mine now"}).status_code == 404
    long_chat.refresh_from_db()
    assert long_chat.summary == ""


def test_it_rejects_get(owner_client, long_chat):
    assert owner_client.get(url(long_chat)).status_code == 405


def test_it_needs_a_login(long_chat):
    assert Client().post(url(long_chat), {"summary": "x"}).status_code == 302
