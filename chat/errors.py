"""The codes a reply run can fail with, defined once.

A run that fails ends with one of these in ``PipelineRun.error_code`` and in
the ``error`` event the client gets (with the run's id). ``LLMError``, the
pipeline's ``StepFailed`` and the task wrappers use these values, and a test
checks that ``docs/websocket.md`` lists exactly them, so a new way to fail
cannot reach users undocumented.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RunError"]


class RunError(StrEnum):
    # The LLM service (chat.llm.LLMError).
    AUTH = "auth"  # 401/403: credentials refused; never retried
    BAD_REQUEST = "bad_request"  # another 4xx: the request itself is wrong; never retried
    RATE_LIMITED = "rate_limited"  # 429
    SERVER = "server"  # 5xx, 408, 409
    TIMEOUT = "timeout"  # no answer, or the stream went quiet, within the read timeout
    CONNECTION = "connection"  # the service could not be reached
    BAD_RESPONSE = "bad_response"  # unreadable data, or an ``error`` object on HTTP 200
    INCOMPLETE = "incomplete"  # the stream dropped or ended without finishing
    EMPTY_REPLY = "empty_reply"  # the model answered nothing visible, twice
    # The pipeline (chat.pipeline, chat.tasks).
    UNAVAILABLE = "unavailable"  # no LLM connection is set up for the companion
    CIRCUIT_OPEN = "circuit_open"  # too many recent failures: the service is rested
    GAVE_UP = "gave_up"  # the reply step was started too many times (worker crashes)
    TIMED_OUT = "timed_out"  # the stuck-run sweep ended a run that stopped moving
    INTERRUPTED = "interrupted"  # the worker writing it died; its lease ran out (chat.leases)
    PROMPT_TOO_LARGE = "prompt_too_large"  # the character's text alone overflows the context
    INTERNAL = "internal"  # a bug on our side
    DATABASE = "database"  # the database stayed unavailable
