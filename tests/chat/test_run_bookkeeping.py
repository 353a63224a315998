"""A step's bookkeeping on its run: one UPDATE each, and nothing another writer added is lost."""

from __future__ import annotations

import json
import sqlite3

import pytest

from chat import runs
from chat.models import PipelineRun
from companionhub.json_merge import JSONMerge
from tests.companions.factories import make_run


def new_run(companion) -> PipelineRun:
    return make_run(companion, status="queued", said="Hello")


@pytest.mark.django_db
def test_each_step_adds_its_duration_and_keeps_the_others(companion, django_assert_num_queries):
    run = new_run(companion)
    runs.run_step_ended(run.pk, step="analyze_context", milliseconds=8.44)
    with django_assert_num_queries(1):
        runs.run_step_ended(run.pk, step="generate_reply", milliseconds=4020.91)
    runs.run_step_ended(run.pk, step="analyze_context", milliseconds=9.0)  # a retried step
    run.refresh_from_db()
    assert run.step_durations == {"analyze_context": 9.0, "generate_reply": 4020.9}


@pytest.mark.django_db
def test_a_key_is_replaced_whole_and_a_stale_reader_loses_nothing(companion):
    run = new_run(companion)
    stale = PipelineRun.objects.get(pk=run.pk)  # read before either write
    PipelineRun.objects.filter(pk=run.pk).update(
        analysis=JSONMerge("analysis", {"context": {"outfit": "coat", "location": "pier"}})
    )
    later = {"context": {"outfit": "dress"}}
    PipelineRun.objects.filter(pk=run.pk).update(analysis=JSONMerge("analysis", {"served_by": "Local / m"}))
    PipelineRun.objects.filter(pk=run.pk).update(analysis=JSONMerge("analysis", later))
    run.refresh_from_db()
    assert stale.analysis == {}
    assert run.analysis == {"context": {"outfit": "dress"}, "served_by": "Local / m"}


@pytest.mark.django_db
def test_the_first_claim_sets_the_start_and_later_claims_keep_it(companion, django_assert_num_queries):
    run = new_run(companion)
    with django_assert_num_queries(1):
        assert runs.run_claim_step(run.pk, step="analyze_context", progress=10)
    started = PipelineRun.objects.get(pk=run.pk).started_at
    assert started is not None
    assert runs.run_claim_step(run.pk, step="generate_reply", progress=30)
    run.refresh_from_db()
    assert (run.started_at, run.step, run.progress, run.status) == (started, "generate_reply", 30, "running")
    runs.run_mark_cancelled(run.pk)
    assert not runs.run_claim_step(run.pk, step="reanalyze", progress=70)


@pytest.mark.parametrize("keys", [{}, {"a b": 1}, {"x'); DROP TABLE y; --": 1}])
def test_only_keys_of_word_characters_are_merged(keys):
    with pytest.raises(ValueError):
        JSONMerge("analysis", keys)


class _Compiler:
    def compile(self, expression):
        return '"data"', ()


def test_on_sqlite_a_key_is_replaced_whole_and_the_others_stay():
    sql, params = JSONMerge("data", {"context": {"outfit": "dress"}, "ms": 1.5}).as_sqlite(_Compiler(), None)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (data TEXT)")
    before = {"context": {"outfit": "coat", "location": "pier"}, "kept": True}
    db.execute("INSERT INTO t VALUES (?)", (json.dumps(before),))
    db.execute(f"UPDATE t SET data = {sql.replace('%s', '?')}", params)  # noqa: S608  (our expression)
    assert json.loads(db.execute("SELECT data FROM t").fetchone()[0]) == {
        "context": {"outfit": "dress"},
        "kept": True,
        "ms": 1.5,
    }
