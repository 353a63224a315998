"""Run leases (chat/leases.py): which runs count as lost, and one sweep ending each."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import leases
from chat.models import PipelineRun
from tests.chat.factories import add_user_message, make_chat
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db


def running(owner, *, lease_ago: float | None) -> PipelineRun:
    companion = make_companion(owner)  # one live run per companion
    conversation = make_chat(companion)
    said = add_user_message(conversation, "Still answering?")
    expires = None if lease_ago is None else timezone.now() - timedelta(seconds=lease_ago)
    return PipelineRun.objects.create(
        conversation=conversation, turn=said.turn, companion=companion, status="running",
        lease_expires_at=expires,
    )  # fmt: skip


def test_a_run_whose_lease_ran_out_is_lost_and_one_held_or_waiting_is_not(user):
    lost = running(user, lease_ago=1)
    running(user, lease_ago=-10)  # held: its lease lies ahead
    running(user, lease_ago=None)  # between two steps, in the queue
    assert leases.lost_runs() == [str(lost.pk)]


def test_only_one_of_two_sweeps_claims_a_lost_run_and_its_claim_is_a_new_lease(user, settings):
    settings.CHAT_RUN_LEASE_SECONDS = 3
    lost = running(user, lease_ago=1)
    assert leases.claim_lost(str(lost.pk)) is True
    assert leases.claim_lost(str(lost.pk)) is False  # the other sweep, at the same time
    lost.refresh_from_db()
    assert lost.lease_expires_at > timezone.now()  # a sweep that died now leaves it to the next
    assert leases.lost_runs() == []
