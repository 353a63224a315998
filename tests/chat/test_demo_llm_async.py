"""The demo back end on an event loop: word for word what the sync demo streams."""

from __future__ import annotations

import pytest

from chat import stream_loop
from chat.demo_llm import DemoLLM
from chat.prompts import CONTINUE_PROMPT

SYSTEM = {"role": "system", "content": "You are Mika, chatting with Sam."}
CASES = {
    "short": ([SYSTEM, {"role": "user", "content": "Hello!"}], 300, ()),
    "story": ([SYSTEM, {"role": "user", "content": "Tell me a story"}], 300, ()),
    "capped": ([SYSTEM, {"role": "user", "content": "Hello!"}], 3, ()),
    "again": ([SYSTEM, {"role": "user", "content": "Hello!"}], 300, ("*smiles warmly* I love",)),
    "continued": (
        [
            SYSTEM,
            {"role": "user", "content": "Tell me a story"},
            {"role": "assistant", "content": "*settles in beside you and smiles* Once upon a time,"},
            {"role": "user", "content": CONTINUE_PROMPT},
        ],
        300,
        (),
    ),
}


@pytest.fixture(scope="module", autouse=True)
def _own_loop():
    stream_loop.shutdown()
    yield
    stream_loop.shutdown()


@pytest.mark.parametrize("case", list(CASES))
def test_the_async_demo_streams_what_the_sync_demo_streams(case):
    messages, max_tokens, avoid = CASES[case]
    demo = DemoLLM(token_delay=0)
    sync = demo.stream_chat(messages, max_tokens=max_tokens, temperature=0.8, avoid=avoid)
    expected = list(sync)

    async def read():
        chat = await demo.astream_chat(messages, max_tokens=max_tokens, temperature=0.8, avoid=avoid)
        return [piece async for piece in chat], chat.result, chat.text, chat.reasoning

    pieces, result, text, reasoning = stream_loop.run(read())
    assert pieces == expected and len(pieces) > 1
    assert result == sync.result
    assert (text, reasoning) == (result.text, "")


def test_aclose_stops_the_async_demo_and_the_heartbeat_beats():
    demo = DemoLLM(token_delay=0.3)  # each word waits longer than a heartbeat
    beats: list[int] = []

    async def beat() -> None:
        beats.append(1)

    async def read():
        chat = await demo.astream_chat(
            [SYSTEM, {"role": "user", "content": "Hi"}], max_tokens=300, temperature=1
        )
        pieces = []
        async for piece in chat.pieces(heartbeat=beat):
            pieces.append(piece)
            if len(pieces) == 2:
                await chat.aclose()
        return pieces

    assert len(stream_loop.run(read(), timeout=30)) == 2
    assert beats
