"""Server processes freeze what start-up made, so a full collection never walks it again."""

from __future__ import annotations

import gc
import weakref

import pytest

from companionhub.gc_tuning import settle_heap


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()  # this test process goes on collecting as before


def test_settling_freezes_what_start_up_made_and_collects_its_garbage(unfrozen):
    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector frees it

    garbage = weakref.ref(Node())
    kept = [object() for _ in range(10)]
    frozen = settle_heap()
    assert frozen > len(kept)  # frozen objects may still be freed by their refcount meanwhile
    assert gc.get_freeze_count() > 0
    assert garbage() is None  # collected, not frozen


def test_a_worker_settles_its_heap_once_it_is_ready(unfrozen):
    from companionhub.celery import _settle_heap

    _settle_heap()
    assert gc.get_freeze_count() > 0
