"""The run state machine's guarantees (chat/runs.py).

* The database itself refuses a second active (queued or running) run for a
  companion, and for a conversation: the unique partial indexes back the
  guarded updates, so no race in the code can make two replies stream at once.
* A run made while its companion is busy elsewhere waits, and
  ``start_waiting_run`` starts it only once the companion is free.
* A waiting run can be cancelled like any other, and is then never started.
* ``chat/runs.py`` is the only code that changes a run's status: a check over
  the source fails the build when a new status change appears anywhere else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from chat import services, turns
from chat.admission import run_admit
from chat.models import PipelineRun, Turn
from chat.runs import (
    run_claim_step,
    run_create,
    run_is_cancelled,
    run_mark_cancelled,
    run_mark_completed,
    run_mark_failed,
    run_release_waiting,
)
from tests.chat.factories import add_user_message, make_chat, make_group

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
Status = PipelineRun.Status


def new_run(conversation, companion, *, text="Hello", waiting=False, follows=None) -> PipelineRun:
    """A run for a new message of the user in ``conversation``, made the one way runs are made."""
    turn = follows.turn if follows else add_user_message(conversation, text).turn
    admission = None if follows else run_admit(conversation.owner, want_image=False)
    return run_create(
        companion=companion,
        want_image=False,
        admission=admission,
        follows=follows,
        waiting=waiting,
        conversation=conversation,
        turn=turn,
    )


def status_of(run) -> str:
    return PipelineRun.objects.values_list("status", flat=True).get(pk=run.pk)


# --- the database refuses a second active run ---------------------------------------------


@pytest.mark.parametrize("first_running", [False, True], ids=["queued", "running"])
def test_the_database_refuses_a_second_active_run_of_a_companion(companion, first_running):
    first = new_run(make_chat(companion), companion)
    if first_running:
        assert run_claim_step(first.pk, step="analyze_context", progress=10)
    other_chat = make_chat(companion)
    with pytest.raises(IntegrityError), transaction.atomic():
        new_run(other_chat, companion)  # the companion already has an active run, in another chat
    with pytest.raises(IntegrityError), transaction.atomic():
        PipelineRun.objects.create(
            conversation=other_chat,
            turn=add_user_message(other_chat, "raw").turn,
            companion=companion,
            status=Status.RUNNING,
        )
    assert PipelineRun.objects.count() == 1


def test_the_database_refuses_a_second_active_run_in_a_conversation(user):
    group = make_group(user, "Mika", "Rin")
    mika, rin = (p.companion for p in group.participants.all())
    first = new_run(group, mika)
    with pytest.raises(IntegrityError), transaction.atomic():
        new_run(group, rin, follows=first)  # the next speaker while the first still writes
    assert list(PipelineRun.objects.values_list("companion_id", flat=True)) == [mika.pk]


def test_ended_and_waiting_runs_do_not_count_as_active(user):
    group = make_group(user, "Mika", "Rin")
    mika, rin = (p.companion for p in group.participants.all())
    first = new_run(group, mika)
    assert run_claim_step(first.pk, step="generate_reply", progress=30)
    assert run_mark_completed(first.pk)
    second = new_run(group, rin, follows=first)  # allowed once the first has ended
    waiting = new_run(make_chat(rin), rin, waiting=True)  # Rin is busy: this one waits
    assert (status_of(second), status_of(waiting)) == (Status.QUEUED, Status.WAITING)
    assert run_mark_failed(second.pk, code="server", text="HTTP 500")
    assert run_release_waiting(waiting.pk)  # Rin is free: the waiting run may be queued


def test_a_turns_later_speaker_follows_the_run_before_it_and_never_paints(user):
    group = make_group(user, "Mika", "Rin")
    mika, rin = (p.companion for p in group.participants.all())
    first = new_run(group, mika)
    other_turn = add_user_message(group, "Another message").turn
    with pytest.raises(ValueError):
        run_create(companion=rin, want_image=False, follows=first, conversation=group, turn=other_turn)
    with pytest.raises(ValueError):
        run_create(companion=rin, want_image=True, follows=first, conversation=group, turn=first.turn)
    with pytest.raises(ValueError):
        run_create(companion=rin, want_image=False, conversation=group, turn=first.turn)  # no admission
    assert PipelineRun.objects.count() == 1


# --- a waiting run starts when its companion is free, and not before ----------------------


@pytest.fixture
def started(monkeypatch):
    """The run ids whose chain of steps was sent to the workers (nothing reaches a worker)."""
    sent: list = []
    monkeypatch.setattr("chat.turns.start_pipeline", lambda run_id, **_: sent.append(run_id))
    monkeypatch.setattr("chat.turns.publish", lambda *args: None)
    return sent


def test_a_reply_for_a_busy_companion_waits_and_starts_once_the_companion_is_free(
    user, companion, started, django_capture_on_commit_callbacks
):
    first_chat, second_chat = make_chat(companion), make_chat(companion)
    with django_capture_on_commit_callbacks(execute=True):
        busy = services.message_send(user=user, conversation=first_chat, text="One").run
        waiting = services.message_send(user=user, conversation=second_chat, text="Two").run
    assert (status_of(busy), status_of(waiting)) == (Status.QUEUED, Status.WAITING)
    assert started == [busy.pk]  # the waiting reply's chain was not sent

    # Not before: queued, then running, the companion is still busy.
    with django_capture_on_commit_callbacks(execute=True):
        assert turns.start_waiting_run(companion.pk) is None
    assert run_claim_step(busy.pk, step="generate_reply", progress=30)
    assert not run_claim_step(waiting.pk, step="analyze_context", progress=10)  # a stray task cannot
    with django_capture_on_commit_callbacks(execute=True):
        assert turns.start_waiting_run(companion.pk) is None
    assert status_of(waiting) == Status.WAITING and started == [busy.pk]

    # The companion is free: the waiting reply is queued and its chain sent, once.
    assert run_mark_completed(busy.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert turns.start_waiting_run(companion.pk).pk == waiting.pk
    assert status_of(waiting) == Status.QUEUED and started == [busy.pk, waiting.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert turns.start_waiting_run(companion.pk) is None  # a second call starts nothing
    assert started == [busy.pk, waiting.pk]


def test_the_oldest_waiting_reply_starts_first_and_the_others_keep_waiting(user, companion, started):
    busy = new_run(make_chat(companion), companion)
    older = new_run(make_chat(companion), companion, waiting=True)
    newer = new_run(make_chat(companion), companion, waiting=True)
    assert run_mark_cancelled(busy.pk)
    assert turns.start_waiting_run(companion.pk).pk == older.pk
    assert (status_of(older), status_of(newer)) == (Status.QUEUED, Status.WAITING)
    assert turns.start_waiting_run(companion.pk) is None  # busy again, with the older one


# --- cancelling a waiting run ---------------------------------------------------------------


def test_a_waiting_run_can_be_cancelled_and_is_never_started(user, companion, started):
    busy = new_run(make_chat(companion), companion)
    waiting = new_run(make_chat(companion), companion, waiting=True)
    assert run_mark_cancelled(waiting.pk)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.error_code) == (Status.CANCELLED, "cancelled")
    assert waiting.finished_at is not None
    assert run_is_cancelled(waiting.pk)
    assert not run_mark_cancelled(waiting.pk)  # already ended: a second cancel changes nothing
    assert not run_release_waiting(waiting.pk)
    assert run_mark_cancelled(busy.pk)
    assert turns.start_waiting_run(companion.pk) is None
    assert status_of(waiting) == Status.CANCELLED and started == []


def test_the_stop_button_cancels_a_reply_that_is_waiting(
    user, companion, started, django_capture_on_commit_callbacks
):
    first_chat, second_chat = make_chat(companion), make_chat(companion)
    with django_capture_on_commit_callbacks(execute=True):
        busy = services.message_send(user=user, conversation=first_chat, text="One").run
        waiting = services.message_send(user=user, conversation=second_chat, text="Two").run
        assert services.run_cancel(user=user, conversation=second_chat, run_id=waiting.pk) == 1
    assert (status_of(busy), status_of(waiting)) == (Status.QUEUED, Status.CANCELLED)
    assert Turn.objects.get(pk=waiting.turn_id).status == Turn.Status.DONE  # the turn is stopped
    assert run_mark_cancelled(busy.pk)
    assert turns.start_waiting_run(companion.pk) is None and started == [busy.pk]


# --- only chat/runs.py changes a run's status ----------------------------------------------

PRODUCT_PACKAGES = ("accounts", "chat", "companionhub", "companions", "groups", "media")
STATE_MACHINE = ROOT / "chat" / "runs.py"
RUN_STATUSES = {status.value for status in Status}
WRITES = {"update", "create", "update_or_create", "get_or_create", "bulk_create", "bulk_update", "save"}


def _mentions_runs(node: ast.AST) -> bool:
    """Whether an expression names runs: ``PipelineRun``, a run status, ``runs_with_companion()``,
    a ``runs`` manager or a variable called ``run``/``*_run``."""
    for part in ast.walk(node):
        if isinstance(part, ast.Name) and (
            part.id in ("PipelineRun", "run", "runs_with_companion") or part.id.endswith("_run")
        ):
            return True
        if isinstance(part, ast.Attribute) and part.attr in ("PipelineRun", "runs", "runs_with_companion"):
            return True
        if isinstance(part, ast.Constant) and part.value in RUN_STATUSES:
            return True
    return False


def _is_run_status_value(node: ast.AST, aliases: set[str]) -> bool:
    """``PipelineRun.Status.X``, ``Status.X`` where ``Status = PipelineRun.Status``, or a run status
    written as text. (A turn's statuses, "open" and "done", are none of these.)"""
    for part in ast.walk(node):
        names_run_status = (
            isinstance(part, ast.Attribute)
            and part.attr == "Status"
            and isinstance(part.value, ast.Name)
            and part.value.id == "PipelineRun"
        )
        if names_run_status or (isinstance(part, ast.Name) and part.id in aliases):
            return True
        if isinstance(part, ast.Constant) and part.value in RUN_STATUSES:
            return True
    return False


def _status_aliases(tree: ast.AST) -> set[str]:
    """Names bound to ``PipelineRun.Status`` (``Status = PipelineRun.Status``)."""
    return {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _is_run_status_value(node.value, set())
        for target in node.targets
        if isinstance(target, ast.Name) and target.id != "status"
    }


def _writes_status(node: ast.AST, aliases: set[str]) -> bool:
    """Whether one node writes a run's status (see the checks' examples below)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES:
        on_runs = _mentions_runs(node.func.value)
        for keyword in node.keywords:
            if keyword.arg == "status" and (on_runs or _is_run_status_value(keyword.value, aliases)):
                return True
            named = keyword.arg in ("defaults", "update_fields", "fields")
            if named and on_runs and "status" in ast.unparse(keyword.value):
                return True
        return False
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        value = node.value
        return any(
            isinstance(target, ast.Attribute)
            and target.attr == "status"
            and (_mentions_runs(target.value) or (value is not None and _is_run_status_value(value, aliases)))
            for target in targets
        )
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setattr" and len(node.args) >= 2:
        field = node.args[1]
        return isinstance(field, ast.Constant) and field.value == "status" and _mentions_runs(node.args[0])
    return False


def run_status_changes(source: str) -> list[int]:
    """Line numbers of ``source`` that write a run's status."""
    tree = ast.parse(source)
    aliases = _status_aliases(tree)
    found = {node.lineno for node in ast.walk(tree) if _writes_status(node, aliases)}
    lines = source.lower().splitlines()
    found |= {n for n, line in enumerate(lines, 1) if "chat_pipelinerun" in line and "status" in line}  # SQL
    return sorted(found)


def product_sources() -> list[Path]:
    return [
        path
        for package in PRODUCT_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts and path != STATE_MACHINE
    ]


def test_only_the_state_machine_changes_a_runs_status():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in product_sources()
        for line in run_status_changes(path.read_text())
    ]
    assert offenders == [], "change a run's status through chat/runs.py, not here"
    assert run_status_changes(STATE_MACHINE.read_text())  # the check does see the state machine's own


@pytest.mark.parametrize(
    "source",
    [
        "PipelineRun.objects.filter(pk=run_id).update(status=PipelineRun.Status.FAILED)",
        "Status = PipelineRun.Status\nPipelineRun.objects.filter(pk=1).update(status=Status.COMPLETED)",
        "runs_with_companion().filter(pk=1).update(status='cancelled', finished_at=now)",
        "run.status = 'failed'\nrun.save(update_fields=['status'])",
        "self.run.status = PipelineRun.Status.RUNNING",
        "conversation.runs.filter(status__in=LIVE).update(status=x)",
        "PipelineRun.objects.create(companion=c, turn=t, status='running')",
        "setattr(run, 'status', value)",
        "cursor.execute('UPDATE chat_pipelinerun SET status = %s', ['failed'])",
    ],
)
def test_the_check_catches_a_status_change(source):
    assert run_status_changes(source)


@pytest.mark.parametrize(
    "source",
    [
        "Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.DONE)",
        "turn.status = Turn.Status.OPEN\nturn.save(update_fields=['order', 'status'])",
        "PipelineRun.objects.filter(status__in=PipelineRun.LIVE).exists()",
        "PipelineRun.objects.filter(pk=run_id).update(progress=50, step='generate_reply')",
        "JsonResponse({'error': 'x'}, status=400)",
        "self.status = status",
    ],
)
def test_the_check_leaves_other_statuses_alone(source):
    assert run_status_changes(source) == []
