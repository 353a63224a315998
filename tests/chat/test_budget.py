"""The budget's arithmetic: what fits, newest first, cut from the start, in whole blocks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chat import budget
from chat.tokens import EstimateCounter

COUNTER = EstimateCounter(1.0)  # one character a token: the arithmetic is easy to read


def test_what_is_available_leaves_the_reply_and_a_margin(settings):
    settings.CHAT_CONTEXT_SAFETY_TOKENS = 10
    settings.CHAT_ESTIMATE_SAFETY_SHARE = 0.1
    assert budget.safety_margin(1000, estimated=False) == 10
    assert budget.safety_margin(1000, estimated=True) == 110
    plan = budget.Budget(context_length=1000, reserve=200, margin=100)
    assert plan.available == 700
    plan.take("system", 300)
    assert plan.left == 400 and plan.share(0.25) == 100
    assert plan.parts()[0] == {"part": "system", "tokens": 300}
    assert [p["part"] for p in plan.parts()] == list(budget.PARTS)


def test_a_reserve_larger_than_the_context_leaves_nothing():
    assert budget.Budget(context_length=512, reserve=600, margin=0).available == 0


def test_history_fits_newest_first_without_holes():
    assert budget.newest_first([5, 5, 50, 5, 5], 20) == 2  # the 50 ends the run, the 5s before it wait
    assert budget.newest_first([5, 5], 100) == 2
    assert budget.newest_first([], 100) == 0


def test_a_long_text_keeps_its_end():
    text = "beginning " + "x" * 50 + " the end"
    cut = budget.cut_to_tokens(text, 20, COUNTER.count)
    assert cut.endswith(" the end") and cut.startswith(budget.ELLIPSIS)
    assert COUNTER.count(cut) <= 20
    assert budget.cut_to_tokens("short", 20, COUNTER.count) == "short"
    assert budget.cut_to_tokens(text, 1, COUNTER.count) == ""


def test_a_summary_loses_its_oldest_paragraphs_first():
    summary = "old " * 10 + "\n\n" + "middle" + "\n\n" + "newest"
    assert budget.newest_paragraphs(summary, 20, COUNTER.count) == "middle\n\nnewest"
    assert budget.newest_paragraphs(summary, 3, COUNTER.count) == ""


def test_examples_go_in_whole_blocks():
    assert budget.first_blocks(["aaaa", "bbbb", "cccc"], 10, COUNTER.count, "\n") == "aaaa\nbbbb"


SETUP = "import django; django.setup()"


@pytest.mark.parametrize("bad", ["-0.1", "1.5"])
def test_a_bad_share_stops_the_start(bad):
    result = subprocess.run(
        [sys.executable, "-c", SETUP],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "companionhub.settings", "CHAT_BUDGET_LORE_SHARE": bad},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "CHAT_BUDGET_LORE_SHARE" in result.stderr
