"""Rows for account tests."""

from __future__ import annotations

from accounts import usage


def charge(companion, tokens: int, when=None):
    """Charge ``tokens`` to the companion's owner as one finished run (no run row needed)."""
    return usage.usage_record_run(
        run_id=None,
        user_id=companion.owner_id,
        companion_id=companion.pk,
        companion_name=companion.name,
        status="completed",
        prompt_tokens=tokens,
        completion_tokens=0,
        image_count=0,
        now=when,
    )
