"""What only the chat app can tell ``/metrics``; ``ChatConfig.ready`` registers it in companionhub."""

from __future__ import annotations

from django.db.models import Count

from chat.models import PipelineRun


def run_counts() -> dict[str, int]:
    """Runs in the database now, by status: every status, zero included."""
    counts = dict(PipelineRun.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in PipelineRun.Status.values}
