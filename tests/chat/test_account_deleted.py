"""An account deleted while one of its replies is being written: the reply stops, quietly.

The rows go with the account (``accounts.services.user_delete``); the worker's
step then finds its run gone. It must stop without a crash report, a failed
run written back, or a row made again for the account that is gone.
"""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from accounts import services
from chat import runs, tasks
from chat.models import Conversation, Message, PipelineRun
from companions.models import Companion
from tests.companions.factories import make_companion, make_run


@pytest.fixture
def run(user):
    return make_run(make_companion(user), status="queued", said="are you there?")


def test_deleting_the_account_cancels_its_replies_being_written(
    user, run, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.user_delete(user=user)
    assert runs.run_is_cancelled(run.pk)  # the streaming loop polls this flag


def test_a_step_whose_run_was_deleted_under_it_stops_quietly(
    user, run, monkeypatch, use_fake_llm, django_capture_on_commit_callbacks
):
    def delete_the_account_meanwhile(run_id, companion, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            services.user_delete(user=user)
        from chat import prompts

        return prompts.SceneState(outfit="", location="", action="")

    monkeypatch.setattr("chat.pipeline._analyze", delete_the_account_meanwhile)
    with capture_logs() as logs:
        result = tasks.analyze_context.apply(args=[str(run.pk)])
    assert result.successful() or result.state == "IGNORED"
    events = [entry["event"] for entry in logs]
    # Its writes found no row (or a read found the run gone: step_run_gone); nothing crashed.
    assert "step_crashed" not in events and "step_retry" not in events
    assert not PipelineRun.objects.exists()
    assert not Message.objects.exists() and not Conversation.objects.exists()
    assert not Companion.objects.exists()
