"""A reply's tokens, read on the worker's stream loop and sent by its ticker.

``generate_reply`` runs in a Celery thread and owns the step (claim, prompt,
retries, the saved reply). Only the stream itself moves: ``stream_reply``
hands it to the process's one event loop (``chat.stream_loop``) and waits, so
hundreds of replies of one worker wait together on one thread and one HTTP
connection pool, and their token batches leave together: the loop's
``chat.publish.Ticker`` sends every reply's batch of each 50 ms in one
round trip to the relay's log.

Nothing per token touches the database. A cancel is seen in the answer to
the batch the reply was sending anyway (the run's ended flag refuses it);
while the model is quiet (thinking, keep-alives), the flag is asked for on a
clock. Progress goes out with the batches about once a second; the text is
saved to the database every few seconds (the live reply in the log is what a
socket sees; the lost-run sweep saves it if the worker dies).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.db import close_old_connections

from chat import events, publish, runs, stream_loop
from chat.backends import LLMChoice
from chat.llm import Completion
from chat.voice import ReplyVoice
from companionhub.relay import relay_log

log = structlog.get_logger(__name__)

PROGRESS_SECONDS = 1.0  # a progress event goes out with the batches this often
SAVE_SECONDS = 5.0  # the text so far is written to the reply row this often
QUIET_SECONDS = 0.2  # a stream that sent no batch for this long asks whether its run was cancelled


class Stopped(Exception):
    """The run ended elsewhere (cancelled, failed) while its reply streamed."""


@dataclass
class StreamJob:
    run_id: str
    llm: LLMChoice
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    batcher: publish.TokenBatcher
    progress: Callable[[int], int]  # the run's progress after this many pieces
    save: Callable[[str, int], None]  # the text so far and the progress, to the database (sync)
    speaker: ReplyVoice | None = None
    avoid: tuple[str, ...] = ()
    pieces: int = field(default=0, init=False)


def stream_reply(job: StreamJob) -> Completion:
    """Stream the reply on the stream loop and wait for it (from a worker thread)."""
    return stream_loop.run(_stream(job))


_closing: set[asyncio.Task[None]] = set()  # upstream responses being handed back to the pool


async def _stream(job: StreamJob) -> Completion:
    batcher = job.batcher
    ticker = publish.ticker(batcher.interval)
    ticker.register(batcher)
    stream: Any = None
    finished = False
    started = last_progress = last_save = last_asked = time.monotonic()

    async def heartbeat() -> None:
        # Called on a clock while anything arrives (reasoning, empty deltas, keep-alives), so a
        # cancel stops a model that is still thinking, not only one writing.
        nonlocal last_asked
        if batcher.refused:
            raise Stopped
        now = time.monotonic()
        flushed = batcher.last_flush or started
        if now - flushed >= QUIET_SECONDS and now - last_asked >= QUIET_SECONDS:
            last_asked = now
            if await _cancelled(job.run_id):
                raise Stopped

    try:
        stream = await job.llm.client.astream_chat(
            job.messages, max_tokens=job.max_tokens, temperature=job.temperature, avoid=job.avoid
        )
        async for piece in stream.pieces(heartbeat=heartbeat):
            batcher.add(piece)
            if batcher.refused:  # the run ended: nothing more goes out
                raise Stopped
            if job.speaker is not None:
                job.speaker.feed(piece)  # a task per finished sentence: one broker write
            job.pieces += 1
            now = time.monotonic()
            if now - last_progress >= PROGRESS_SECONDS:
                last_progress = now
                progress = job.progress(job.pieces)
                batcher.queue_event(events.progress(job.run_id, progress, "generate_reply"))
                if now - last_save >= SAVE_SECONDS:
                    last_save = now
                    await asyncio.to_thread(_in_thread, job.save, batcher.text, progress)
        finished = True
        return stream.result
    finally:
        await ticker.release(batcher)  # what is left goes out before the worker thread goes on
        if stream is not None and finished:
            # A finished answer's connection returns to the pool once its last bytes are read.
            task = asyncio.get_running_loop().create_task(stream.aclose())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        elif stream is not None:
            await stream.aclose()  # stop reading from the LLM at once (cancel, error)


async def _cancelled(run_id: str) -> bool:
    try:
        return await relay_log().aflag_set(publish.run_ended_flag(run_id))
    except Exception:  # Redis restarting: ask the database, which a cancel updates too
        return await asyncio.to_thread(_in_thread, runs.run_is_cancelled, run_id)


def _in_thread[T](call: Callable[..., T], *args: Any) -> T:
    """Database work from the loop, in a thread that hands its connection back when done."""
    try:
        return call(*args)
    finally:
        close_old_connections()
