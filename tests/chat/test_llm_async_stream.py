"""The async stream (``astream_chat`` on ``chat.stream_loop``) against the fake server.

It reads through the same ``ReplyDecoder`` as the sync client, so the main check is
parity: for each way the fake can answer, the sync and the async stream give the
same pieces, text, reasoning, usage and finish reason, or the same error with the
same partial text. No test measures time: the fake's records say what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from chat import aio_session, stream_loop
from chat.llm import AsyncChatStream, Completion, LLMError, OpenAIChatClient
from tests.chat.test_llm_client import HTTP_ERRORS
from tests.chat.test_llm_streaming import DEBRIS_SAMPLES, THINK_SAMPLES
from tests.fakes.llm_server import FRAMINGS, FakeLLMServer

MESSAGES = [
    {"role": "system", "content": "You are Mika."},
    {"role": "user", "content": "Shall we go to the café?"},
]
REPLY = "Oui! *smiles* Let's go to the café, I'd love a crème brûlée."
LONG_REPLY = " ".join(f"w{i}" for i in range(200))


@pytest.fixture(scope="module", autouse=True)
def _own_loop():
    """This module's streams run on a loop of their own, closed with its pool at the end."""
    stream_loop.shutdown()
    yield
    stream_loop.shutdown()


@pytest.fixture
def client(fake_llm):
    return OpenAIChatClient(
        base_url=fake_llm.base_url, model="fake-model", api_key="test-key", read_timeout=20
    )


@dataclass(frozen=True)
class Outcome:
    pieces: list[str]
    result: Completion | None = None
    usage: dict | None = None
    error: tuple | None = None


def _error(exc: LLMError) -> tuple:
    # A transport failure names its library's exception in the message; the rest is the same.
    message = None if exc.code == "connection" else exc.message
    return (exc.code, exc.retryable, exc.status, exc.retry_after, message, exc.partial_text)


def sync_outcome(client: OpenAIChatClient, *, max_tokens: int = 300) -> Outcome:
    pieces: list[str] = []
    try:
        chat = client.stream_chat(MESSAGES, max_tokens=max_tokens, temperature=0.7)
        pieces.extend(chat)
    except LLMError as exc:
        return Outcome(pieces, error=_error(exc))
    assert (chat.text, chat.reasoning) == (chat.result.text, chat.result.reasoning)
    return Outcome(pieces, chat.result, chat.usage)


async def _async_outcome(client: OpenAIChatClient, max_tokens: int) -> Outcome:
    pieces: list[str] = []
    try:
        chat = await client.astream_chat(MESSAGES, max_tokens=max_tokens, temperature=0.7)
        async for piece in chat:
            pieces.append(piece)
    except LLMError as exc:
        return Outcome(pieces, error=_error(exc))
    assert (chat.text, chat.reasoning) == (chat.result.text, chat.result.reasoning)
    return Outcome(pieces, chat.result, chat.usage)


def async_outcome(client: OpenAIChatClient, *, max_tokens: int = 300) -> Outcome:
    return stream_loop.run(_async_outcome(client, max_tokens), timeout=60)


def both(client: OpenAIChatClient, fake: FakeLLMServer, setup: Callable[[FakeLLMServer], None], **kw):
    """The sync and the async outcome of the same answer (one-shot failures set up for each)."""
    setup(fake)
    expected = sync_outcome(client, **kw)
    setup(fake)
    return expected, async_outcome(client, **kw)


# --- the same answer, sync and async -------------------------------------------------


def _fail(**kwargs) -> Callable[[FakeLLMServer], None]:
    return lambda fake: fake.fail_next(**kwargs)


def _set(**attributes) -> Callable[[FakeLLMServer], None]:
    def setup(fake: FakeLLMServer) -> None:
        for name, value in attributes.items():
            setattr(fake, name, value)

    return setup


WIRE_CASES = {
    "whole": _set(),
    "oddities": _set(null_choices=True, comment_lines=True, reasoning=True),
    "no-usage": _set(send_usage=False),
    "disconnect": _fail(kind="disconnect", after_tokens=3),
    "cut-in-utf8": _fail(kind="cut", after_tokens=4),
    "truncated": _fail(kind="truncate", after_tokens=2),
    "error-mid-stream": _fail(kind="error_mid", after_tokens=2),
    "error-on-200": _fail(kind="error_200"),
    "garbage": _fail(kind="garbage"),
    "empty": _fail(kind="empty"),
    "end-marker": _set(reply_tokens=["Hi", " there", ".", "<|im_end|>", "\n<|im_start|>user", " more"]),
}


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("case", list(WIRE_CASES))
def test_the_async_stream_matches_the_sync_one_in_every_framing(client, fake_llm, framing, gzip, case):
    fake_llm.framing, fake_llm.gzip = framing, gzip
    fake_llm.set_reply(REPLY)
    expected, outcome = both(client, fake_llm, WIRE_CASES[case])
    assert outcome == expected
    if case in ("whole", "oddities", "no-usage"):
        assert outcome.result is not None and outcome.result.text == REPLY


@pytest.mark.parametrize("tokens", [s[0] for s in DEBRIS_SAMPLES + THINK_SAMPLES])
def test_think_blocks_and_template_debris_are_handled_alike(client, fake_llm, tokens):
    fake_llm.reply_tokens = tokens
    expected, outcome = both(client, fake_llm, _set())
    assert outcome == expected
    assert outcome.result is not None


def test_reasoning_fields_and_max_tokens_are_handled_alike(client, fake_llm):
    fake_llm.set_reply(REPLY)
    expected, outcome = both(client, fake_llm, _set(reasoning=True, reasoning_text="Coffee? "))
    assert outcome == expected
    assert outcome.result is not None and outcome.result.reasoning == "Coffee? Coffee? "
    expected, outcome = both(client, fake_llm, _set(), max_tokens=4)
    assert outcome == expected
    assert outcome.result is not None and outcome.result.finish_reason == "length"


def test_the_async_request_carries_model_options_and_key(client, fake_llm):
    async_outcome(client, max_tokens=123)
    request = fake_llm.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer test-key"
    assert request["json"]["stream"] is True
    assert request["json"]["stream_options"] == {"include_usage": True}
    assert (request["json"]["max_tokens"], request["json"]["temperature"]) == (123, 0.7)


# --- errors, mapped as the sync client maps them ---------------------------------------


@pytest.mark.parametrize(("status", "code", "retryable"), HTTP_ERRORS)
def test_http_errors_are_mapped_alike(client, fake_llm, status, code, retryable):
    expected, outcome = both(client, fake_llm, _fail(status=status))
    assert outcome == expected
    assert outcome.error is not None and outcome.error[:3] == (code, retryable, status)
    assert async_outcome(client).result is not None  # one-shot: the next request succeeds


@pytest.mark.parametrize("retry_after", [3, None, "Wed, 21 Oct 2026 07:28:00 GMT", "soon"])
def test_retry_after_is_read_alike(client, fake_llm, retry_after):
    expected, outcome = both(client, fake_llm, _fail(status=429, retry_after=retry_after))
    assert outcome == expected
    assert outcome.error is not None and outcome.error[3] == (3.0 if retry_after == 3 else None)


def test_an_error_body_that_is_not_json(client, fake_llm):
    expected, outcome = both(client, fake_llm, _fail(status=502, body="<html>Bad gateway</html>"))
    assert outcome == expected
    assert outcome.error is not None and "Bad gateway" in outcome.error[4]


def test_a_server_that_is_down(client, fake_llm):
    fake_llm.down()
    expected, outcome = both(client, fake_llm, _set())
    assert outcome == expected
    assert outcome.error is not None and outcome.error[:3] == ("server", True, 503)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused(fake_llm):
    nowhere = OpenAIChatClient(base_url=f"http://127.0.0.1:{_closed_port()}/v1", model="m", connect_timeout=1)
    expected, outcome = both(nowhere, fake_llm, _set())
    assert outcome == expected
    assert outcome.error is not None and outcome.error[:2] == ("connection", True)


def test_a_silent_server_is_a_timeout(fake_llm):
    impatient = OpenAIChatClient(base_url=fake_llm.base_url, model="m", read_timeout=0.3)
    expected, outcome = both(impatient, fake_llm, _fail(kind="hang", seconds=2))
    assert outcome == expected
    assert outcome.error is not None and outcome.error[:2] == ("timeout", True)


def test_a_stream_that_goes_quiet_is_a_timeout_with_the_text_so_far(fake_llm):
    impatient = OpenAIChatClient(base_url=fake_llm.base_url, model="m", read_timeout=0.3)
    fake_llm.set_reply("one two three")
    fake_llm.token_delay = 2
    expected, outcome = both(impatient, fake_llm, _set())
    assert outcome == expected
    assert outcome.pieces == ["one"]
    assert outcome.error is not None and outcome.error[0] == "timeout" and outcome.error[5] == "one"


# --- closing and cancelling ----------------------------------------------------------


def test_aclose_mid_stream_closes_the_upstream_connection(client, fake_llm):
    fake_llm.set_reply(LONG_REPLY)
    fake_llm.token_delay = 0.05

    async def read_two() -> list[str]:
        chat = await client.astream_chat(MESSAGES, max_tokens=500, temperature=0.8)
        pieces: list[str] = []
        with contextlib.suppress(LLMError):
            async for piece in chat:
                pieces.append(piece)
                if len(pieces) == 2:
                    await chat.aclose()
        return pieces

    assert len(stream_loop.run(read_two(), timeout=30)) == 2
    record = fake_llm.wait_for_stream_end(timeout=10)
    assert record["client_disconnected"] and not record["completed"]
    assert record["tokens_sent"] < 20


def test_aclose_from_another_task_ends_the_reader_and_the_upstream_request(client, fake_llm):
    """A cancel lands while the reader waits for bytes: it wakes with what it had."""
    fake_llm.set_reply(LONG_REPLY)
    fake_llm.hold_after(2)

    async def read_until_closed() -> tuple[list[str], LLMError]:
        chat = await client.astream_chat(MESSAGES, max_tokens=500, temperature=0.8)
        pieces: list[str] = []
        two = asyncio.Event()

        async def read() -> None:
            async for piece in chat:
                pieces.append(piece)
                if len(pieces) == 2:
                    two.set()

        reader = asyncio.create_task(read())
        await two.wait()  # the reader now waits for bytes the held server does not send
        await chat.aclose()
        with pytest.raises(LLMError) as caught:
            await reader
        return pieces, caught.value

    pieces, error = stream_loop.run(read_until_closed(), timeout=30)
    assert error.code == "incomplete" and error.partial_text == "".join(pieces) == "w0 w1"
    fake_llm.release()
    record = fake_llm.wait_for_stream_end(timeout=10)
    assert record["client_disconnected"] and not record["completed"]


def test_a_run_that_times_out_is_cancelled_and_closes_the_upstream_request(client, fake_llm):
    fake_llm.set_reply(LONG_REPLY)
    fake_llm.hold_after(1)
    closed: list[bool] = []

    async def read_all() -> None:
        chat = await client.astream_chat(MESSAGES, max_tokens=500, temperature=0.8)
        try:
            async for _ in chat:
                pass
        finally:
            closed.append(True)

    with pytest.raises(TimeoutError):
        stream_loop.run(read_all(), timeout=0.5)
    assert closed == [True]  # run() waited for the coroutine to close what it held
    fake_llm.release()
    record = fake_llm.wait_for_stream_end(timeout=10)
    assert record["client_disconnected"] and not record["completed"]


@pytest.mark.parametrize("kind", ["plain", "async"])
def test_the_heartbeat_beats_while_only_reasoning_arrives(client, fake_llm, kind):
    fake_llm.reasoning_chunks = 2000
    fake_llm.token_delay = 0.005

    class Stop(Exception):
        pass

    def plain() -> None:
        raise Stop

    async def awaited() -> None:
        raise Stop

    async def read() -> None:
        chat = await client.astream_chat(MESSAGES, max_tokens=50, temperature=0.8)
        async for _ in chat.pieces(heartbeat=plain if kind == "plain" else awaited):
            pass

    with pytest.raises(Stop):
        stream_loop.run(read(), timeout=30)
    record = fake_llm.wait_for_stream_end(timeout=10)
    assert record["tokens_sent"] == 0 and record["client_disconnected"]
    assert 0 < record["reasoning_sent"] < 2000


def test_the_end_marker_closes_the_stream_at_once(client, fake_llm):
    fake_llm.reply_tokens = ["Hi", " there", ".", "<|im_end|>", "\n<|im_start|>user", *[" more"] * 50]
    fake_llm.hold_after(4)  # right after the marker
    outcome = async_outcome(client)
    assert outcome.result is not None and (outcome.result.text, outcome.result.finish_reason) == (
        "Hi there.",
        "stop",
    )
    assert not fake_llm.wait_until_held()["hold_timed_out"]  # finished while the server was held
    fake_llm.release()
    record = fake_llm.wait_for_stream_end(timeout=10)
    assert not record["completed"] and record["client_disconnected"]


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_a_finished_reply_hands_its_connection_to_the_next(client, fake_llm, framing, gzip):
    """Read to [DONE], a reply's connection serves the next one (the body's end may follow
    [DONE] a moment later, as the chunked terminator and the gzip trailer do)."""
    fake_llm.framing, fake_llm.gzip = framing, gzip
    fake_llm.body_end_delay = 0.1

    async def reply() -> str:
        async with await client.astream_chat(MESSAGES, max_tokens=300, temperature=0.7) as chat:
            return "".join([piece async for piece in chat])

    assert stream_loop.run(reply()) == stream_loop.run(reply()) == fake_llm.reply_text
    first, second = fake_llm.requests[-2:]
    assert first["client"] == second["client"]


def test_a_connection_closed_by_the_server_is_not_reused(client, fake_llm):
    fake_llm.framing = "close"
    async_outcome(client)
    async_outcome(client)
    first, second = fake_llm.requests[-2:]
    assert first["client"] != second["client"]


# --- many at once on the one loop -------------------------------------------------------


def test_two_hundred_streams_at_once_on_the_one_loop_all_end_with_the_exact_text(client, fake_llm):
    fake_llm.set_reply(REPLY)
    fake_llm.hold_timeout = 120
    fake_llm.hold_after(1)  # every stream waits after its first token until all 200 are open
    count = 200

    async def read(chat: AsyncChatStream) -> tuple[str, Completion]:
        pieces = [piece async for piece in chat]
        return "".join(pieces), chat.result

    async def read_all() -> list[tuple[str, Completion]]:
        chats = await asyncio.gather(
            *(client.astream_chat(MESSAGES, max_tokens=300, temperature=0.7) for _ in range(count))
        )
        return await asyncio.gather(*(read(chat) for chat in chats))

    future = stream_loop.submit(read_all())
    deadline = time.monotonic() + 120
    while sum(record["held"] for record in list(fake_llm.streams)) < count:
        assert time.monotonic() < deadline, "the streams never were all open at once"
        time.sleep(0.05)
    fake_llm.release()
    results = future.result(timeout=120)
    assert len(results) == count
    assert all(text == result.text == REPLY and result.finish_reason == "stop" for text, result in results)
    assert not any(record["hold_timed_out"] for record in fake_llm.streams)


# --- the session ------------------------------------------------------------------------


def test_one_session_per_loop():
    async def the_session() -> int:
        return id(aio_session.session())

    assert stream_loop.run(the_session()) == stream_loop.run(the_session())
