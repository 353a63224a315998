"""Celery tasks of memories, on the ``memory`` queue (settings ``CELERY_TASK_ROUTES``): memory
work never waits behind replies, and replies never wait behind it."""

from __future__ import annotations

from celery import shared_task

from memories import services


@shared_task(name="memories.embed_memory", ignore_result=True)
def embed_memory(memory_id: int, text: str) -> None:
    """The vector of a memory the user added or edited. No retry: without a vector the memory is
    still found by full text, and its next edit tries again."""
    services.memory_embed(memory_id=memory_id, text=text)
