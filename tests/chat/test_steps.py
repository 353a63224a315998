"""The step registry (``chat.steps``) is the one place a pipeline step is declared.

The chain, the task routes, the progress bands, the metrics and the page's
labels all come from it; each test here fails when one of them stops doing so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from celery.exceptions import Ignore
from django.template import Context, Template

from chat import pipeline, steps
from chat.pipeline import StepFailed
from companionhub import metrics
from companionhub.celery import app

ROOT = Path(__file__).resolve().parents[2]
EACH_STEP = pytest.mark.parametrize("step", steps.STEPS, ids=lambda step: step.name)


def route(task_name: str) -> dict:
    return app.amqp.router.route({}, task_name)


def test_the_chain_runs_the_registrys_steps_in_order():
    turn = steps.chain_for("r1")
    picture = steps.chain_for("r1", picture_only=True)
    sent = [signature.task for signature in [*turn.tasks, *picture.tasks]]
    assert sent == [*(step.task for step in steps.STEPS), "chat.finish"]
    # The last step of every turn is the one that sends the picture steps, or finish.
    assert steps.chain_steps()[-1].name == "update_state"
    assert all(s.immutable and tuple(s.args) == ("r1",) for s in [*turn.tasks, *picture.tasks])


def test_every_step_has_a_pipeline_function_and_a_task():
    app.loader.import_default_modules()  # every app's tasks, as a worker imports them
    for step in steps.STEPS:
        assert callable(getattr(pipeline, step.name, None)), step.name
        assert step.task in app.tasks, step.task
    for step in (*steps.AFTER_STEPS, *steps.STREAM_STEPS):
        assert step.task in app.tasks, step.task
    every = (*steps.STEPS, *steps.AFTER_STEPS, *steps.STREAM_STEPS)
    assert len(set(steps.names())) == len(every)
    assert len({step.task for step in every}) == len(every)


def test_a_step_is_looked_up_by_name():
    assert steps.get("generate_reply").task == "chat.generate_reply"
    with pytest.raises(KeyError, match="no_such_step"):
        steps.get("no_such_step")


@EACH_STEP
def test_each_steps_task_goes_to_its_queue_with_its_priority(step):
    routed = route(step.task)
    expected = app.conf.task_default_queue if step.queue == steps.CHAT else step.queue
    assert routed["queue"].name == expected
    assert routed["priority"] == step.priority


@pytest.mark.parametrize("step", steps.AFTER_STEPS, ids=lambda step: step.name)
def test_the_after_steps_go_to_the_memory_queue_and_are_not_in_the_reply_chain(step):
    routed = route(step.task)
    assert routed["queue"].name == steps.MEMORY == "memory"
    assert routed["priority"] == steps.BACKGROUND
    chained = [s.task for s in steps.chain_for("r1").tasks] + [
        s.task for s in steps.chain_for("r1", picture_only=True).tasks
    ]
    assert step.task not in chained
    assert step.name not in steps.labels()  # they report no progress
    assert [s.task for s in steps.after_turn("r1")] == [s.task for s in steps.AFTER_STEPS]
    assert all(s.immutable and tuple(s.args) == ("r1",) for s in steps.after_turn("r1"))


@pytest.mark.parametrize("step", steps.AFTER_STEPS, ids=lambda step: step.name)
def test_an_after_steps_failure_is_logged_and_goes_no_further(step, monkeypatch):
    from chat import tasks

    target = {
        "summarize": (tasks.summaries, "summarize_after_turn"),
        "remember": (tasks.memory_steps, "remember_after_turn"),
    }
    module, function = target[step.name]

    def broken(run_id):
        raise RuntimeError("the memory LLM is on fire")

    monkeypatch.setattr(module, function, broken)
    monkeypatch.setattr(pipeline, "run_gone", lambda run_id: False)
    monkeypatch.setattr(pipeline, "fail", lambda run_id, failure: pytest.fail("an after-step failed the run"))
    assert app.tasks[step.task]("r1") is None  # no Ignore, no retry, no exception


def test_the_embedded_worker_reads_the_memory_queue():
    from companionhub.embedded_worker import embedded_queues

    assert "memory" in embedded_queues()


def test_finish_is_routed_and_undeclared_tasks_go_to_the_default_queue():
    assert route("chat.finish")["queue"].name == app.conf.task_default_queue
    assert route("chat.finish")["priority"] == 0
    assert route("chat.generate_image")["queue"].name == "images"
    other = route("media.report_orphans")
    assert other["queue"].name == app.conf.task_default_queue and "priority" not in other


def test_the_chat_queue_is_still_named_by_the_environment():
    code = (
        "import django; django.setup(); from companionhub.celery import app; "
        "r = app.amqp.router.route; "
        "print(r({}, 'chat.generate_reply')['queue'].name, r({}, 'chat.generate_reply')['priority'], "
        "r({}, 'chat.finish')['queue'].name, r({}, 'chat.generate_image')['queue'].name)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "companionhub.settings", "CELERY_CHAT_QUEUE": "site2-chat"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [
        "site2-chat",
        str(steps.get("generate_reply").priority),
        "site2-chat",
        "images",
    ]


@EACH_STEP
def test_a_required_steps_failure_fails_the_run_and_an_optional_ones_does_not(step, monkeypatch):
    failed = []

    def broken(run_id):
        raise StepFailed("server", "The service is down.", retryable=False)

    monkeypatch.setattr(pipeline, step.name, broken)
    monkeypatch.setattr(pipeline, "fail", lambda run_id, failure: failed.append(run_id))
    monkeypatch.setattr(pipeline, "image_failed", lambda run_id, failure: None)
    task = app.tasks[step.task]
    if step.optional:
        task("r1")  # returns: the chain goes on to the next step
        assert failed == []
    else:
        with pytest.raises(Ignore):  # the chain stops
            task("r1")
        assert failed == ["r1"]


def test_progress_bands_rise_within_0_to_100():
    previous_end = 0
    for step in steps.STEPS:
        assert previous_end <= step.start < step.end <= 100, step.name
        previous_end = step.end
    assert steps.DONE_PROGRESS == 100


def test_progress_inside_a_band_rises_and_leaves_its_end_to_the_step():
    step = steps.get("generate_reply")
    points = [step.within(tenths / 10) for tenths in range(-2, 15)]
    assert points == sorted(points)
    assert points[0] == step.start and points[-1] == step.end - 1


@pytest.mark.django_db
def test_the_metrics_show_a_duration_histogram_for_every_step():
    assert metrics.step_names() == steps.names()
    text = metrics.render()
    for name in steps.names():
        assert f'companionhub_step_duration_seconds_count{{step="{name}"}} ' in text


def test_the_template_tag_renders_every_label_for_the_page_script():
    html = Template("{% load chat_steps %}{% step_labels %}").render(Context())
    match = re.fullmatch(r'<script id="step-labels" type="application/json">(.*)</script>', html, re.S)
    assert match, html
    labels = json.loads(match[1])
    assert labels == {**{step.name: step.label for step in steps.STEPS}, "done": "Done"}
    assert labels["analyze_context"] == "Reading your message…"
    assert all(labels.values())


def test_the_documents_list_the_steps_as_declared():
    websocket = (ROOT / "docs" / "websocket.md").read_text()
    section = websocket.split("Steps, in order:", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"`(\w+)` \((\d+)→(\d+)", section)
    assert listed == [(step.name, str(step.start), str(step.end)) for step in steps.STEPS]
    histogram = (ROOT / "docs" / "metrics.md").read_text().split("`companionhub_step_duration_seconds`", 1)[1]
    named = re.search(r"`step` = ([a-z_, ]+);", histogram)
    assert named and tuple(named[1].split(", ")) == steps.names()


def test_the_voice_step_goes_to_the_voice_queue():
    routed = route(steps.SPEAK.task)
    assert routed["queue"].name == steps.VOICE == "voice"
    signature = steps.speak_signature("r", 5, 2, "Hello.", last=True, attempt=1)
    assert signature.args == ("r", 5, 2, "Hello.") and signature.kwargs == {"last": True, "attempt": 1}
