"""Streaming that works with any server: every HTTP framing, reasoning kept apart, template
debris cut, and a stream that stops reading as soon as the model has ended its turn.

The fake answers in each framing a real server or proxy uses: chunked, close-delimited
(HTTP/1.0 style, the body ends when the connection closes), Content-Length, each gzip'd
or not. No test measures time: the fake holds the stream until the test releases it, so
a token the client hands on before the release was read before the rest was even sent.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat.llm import TEMPLATE_MARKERS, LLMError, OpenAIChatClient, _partial_tail, strip_template_debris
from tests.fakes.llm_server import FRAMINGS

MESSAGES = [
    {"role": "system", "content": "You are Mika."},
    {"role": "user", "content": "Shall we go to the café?"},
]
REPLY = "Oui! *smiles* Let's go to the café, I'd love a crème brûlée."
WIRES = [(framing, gzip) for framing in FRAMINGS for gzip in (False, True)]
WIRE_IDS = [f"{framing}{'-gzip' if gzip else ''}" for framing, gzip in WIRES]


@pytest.fixture
def client(fake_llm):
    return OpenAIChatClient(base_url=fake_llm.base_url, model="fake-model", read_timeout=20)


@pytest.fixture(params=WIRES, ids=WIRE_IDS)
def wire(request, fake_llm):
    """The fake, answering in one framing."""
    fake_llm.framing, fake_llm.gzip = request.param
    fake_llm.set_reply(REPLY)
    yield fake_llm
    fake_llm.release()


def open_stream(client, **kwargs):
    return client.stream_chat(MESSAGES, max_tokens=kwargs.pop("max_tokens", 300), temperature=0.7)


def stream_error(client) -> tuple[list[str], LLMError]:
    pieces: list[str] = []
    with pytest.raises(LLMError) as caught:
        for piece in open_stream(client):
            pieces.append(piece)
    return pieces, caught.value


# --- every framing ---------------------------------------------------------------


def test_the_first_token_is_handed_on_before_the_server_sends_the_rest(client, wire):
    wire.hold_after(1)
    chat = open_stream(client)
    pieces = iter(chat)
    first = next(pieces)
    # The fake waits for the release after its first token: the client had it before the
    # rest was sent (a client that buffered would still be waiting for the hold to time out).
    record = wire.wait_until_held()
    assert record["tokens_sent"] == 1 and not record["hold_timed_out"]
    assert first == wire.reply_tokens[0]
    wire.release()
    assert first + "".join(pieces) == REPLY
    assert (chat.result.text, chat.result.finish_reason) == (REPLY, "stop")
    assert wire.wait_for_stream_end()["completed"]


def test_a_whole_reply_with_usage_in_every_framing(client, wire):
    wire.null_choices = wire.comment_lines = True  # `choices: null` and `choices: []` too
    chat = open_stream(client)
    assert "".join(chat) == REPLY
    assert chat.result.usage_estimated is False
    assert chat.result.completion_tokens == len(wire.reply_tokens)


def test_a_drop_mid_stream_is_incomplete_in_every_framing(client, wire):
    wire.fail_next(kind="disconnect", after_tokens=3)
    pieces, error = stream_error(client)
    assert (error.code, error.retryable) == ("incomplete", True)
    assert "".join(pieces) == error.partial_text == "".join(wire.reply_tokens[:3])


def test_a_drop_inside_a_utf8_character_is_incomplete_in_every_framing(client, wire):
    wire.reply_tokens = ["On", " y", " va", " au", " café", " !"]
    wire.fail_next(kind="cut", after_tokens=4)  # the next event stops inside the "é"
    pieces, error = stream_error(client)
    assert error.code == "incomplete"
    assert "".join(pieces) == error.partial_text == "On y va au"


def test_a_clean_end_without_finishing_is_incomplete_in_every_framing(client, wire):
    wire.fail_next(kind="truncate", after_tokens=2)
    pieces, error = stream_error(client)
    assert error.code == "incomplete"
    assert error.partial_text == "".join(pieces) == "".join(wire.reply_tokens[:2])


def test_an_error_object_mid_stream_in_every_framing(client, wire):
    wire.fail_next(kind="error_mid", after_tokens=2)
    pieces, error = stream_error(client)
    assert (error.code, error.retryable) == ("bad_response", True)
    assert "upstream overloaded" in error.message
    assert error.partial_text == "".join(pieces) == "".join(wire.reply_tokens[:2])


def test_an_error_object_instead_of_a_reply_in_every_framing(client, wire):
    wire.fail_next(kind="error_200")
    pieces, error = stream_error(client)
    assert (pieces, error.code) == ([], "bad_response")


def test_the_end_marker_closes_the_stream_at_once_in_every_framing(client, wire):
    """Once the model has ended its turn, nothing more is read: the fake is still held."""
    wire.reply_tokens = ["Hi", " there", ".", "<|im_end|>", "\n<|im_start|>user", *[" more"] * 50]
    wire.token_delay = 0.01
    wire.hold_after(4)  # right after the marker
    chat = open_stream(client)
    assert "".join(chat) == "Hi there."
    assert chat.result.finish_reason == "stop"
    record = wire.wait_until_held()
    assert not record["hold_timed_out"]  # the client finished while the server was still held
    wire.release()
    record = wire.wait_for_stream_end(timeout=10)
    assert not record["completed"] and record["client_disconnected"]


# --- reasoning -------------------------------------------------------------------


def test_reasoning_fields_are_kept_apart_from_the_reply(client, fake_llm):
    fake_llm.reasoning = True
    fake_llm.reasoning_text = "The user wants coffee. "
    fake_llm.set_reply(REPLY)
    chat = open_stream(client)
    assert "".join(chat) == REPLY
    assert chat.result.text == REPLY
    assert chat.result.reasoning == "The user wants coffee. " * 2  # reasoning_content, then reasoning


# (tokens as streamed, the reply, the reasoning)
THINK_SAMPLES = [
    (["<think>", "Coffee?", "</think>", "Yes!"], "Yes!", "Coffee?"),
    (
        ["<th", "ink>Let me", " think</th", "ink>\n\n", "Hello", " there"],
        "\n\nHello there",
        "Let me think",
    ),
    (["<", "t", "h", "i", "n", "k", ">", "a", "<", "/", "think", ">", "b"], "b", "a"),
    (["Sure. ", "<think>", "aside", "</think>", " Done."], "Sure.  Done.", "aside"),
    (["<think>", "hmm, the user", " wants"], "", "hmm, the user wants"),  # never closed
    (["a < b and <thin", " ice>"], "a < b and <thin ice>", ""),
]


@pytest.mark.parametrize(("tokens", "text", "reasoning"), THINK_SAMPLES)
def test_think_blocks_are_kept_apart_even_split_across_chunks(client, fake_llm, tokens, text, reasoning):
    fake_llm.reply_tokens = tokens
    chat = open_stream(client)
    pieces = list(chat)
    assert "".join(pieces) == chat.result.text == text
    assert chat.result.reasoning == reasoning


def test_complete_keeps_think_blocks_apart(client, fake_llm):
    fake_llm.completion_text = '<think>The scene is a beach.</think>{"outfit": "swimsuit"}'
    result = client.complete(MESSAGES, max_tokens=50, temperature=0.2)
    assert (result.text, result.reasoning) == ('{"outfit": "swimsuit"}', "The scene is a beach.")


def test_the_heartbeat_beats_while_only_reasoning_arrives(client, fake_llm):
    """A reader can stop a stream that is still thinking: no visible token is needed."""
    fake_llm.reasoning_chunks = 2000
    fake_llm.token_delay = 0.005

    class Stop(Exception):
        pass

    def heartbeat() -> None:
        raise Stop

    with pytest.raises(Stop):
        list(open_stream(client).pieces(heartbeat=heartbeat))
    record = fake_llm.wait_for_stream_end(timeout=10)
    assert record["tokens_sent"] == 0 and record["client_disconnected"]
    assert 0 < record["reasoning_sent"] < 2000


# --- template debris -------------------------------------------------------------

# Replies as small local models sent them, end marker and what followed included.
DEBRIS_SAMPLES = [
    # Qwen2.5 0.5B (ChatML) with the server's stop list ignored
    (["Hello", "!", " How", " can", " I", " help", "?", "<|im", "_end", "|>", "\n", "<|im_start|>", "user"],
     "Hello! How can I help?"),
    # Gemma 2 2B
    (["Sure", " thing", "!", "<end", "_of", "_turn", ">", "\n", "<start_of_turn>", "user"], "Sure thing!"),
    # Llama 3.2 1B
    (["Hi", "!", "<|eot", "_id|>", "<|start_header_id|>", "user", "<|end_header_id|>"], "Hi!"),
    # TinyLlama (Llama 2 / Mistral style)
    (["I", "'d", " love", " to", ".", " </", "s", ">"], "I'd love to. "),
    # Phi-3 mini
    (["Of", " course", ".", "<|end|>", "\n", "<|user|>"], "Of course."),
    # a model naming its role first, as a base model does
    (["Ass", "istant", ":", " Hello", " there"], "Hello there"),
    (["assistant: ", "Hi.", "</s>"], "Hi."),
    (["Assist", "ance", " is", " here", "."], "Assistance is here."),
]  # fmt: skip


@pytest.mark.parametrize(("tokens", "expected"), DEBRIS_SAMPLES)
def test_template_debris_never_reaches_the_reply(client, fake_llm, tokens, expected):
    fake_llm.reply_tokens = tokens
    chat = open_stream(client)
    pieces = list(chat)
    assert "".join(pieces) == chat.result.text == expected
    assert strip_template_debris("".join(tokens)) == expected


@pytest.mark.parametrize(("tokens", "expected"), DEBRIS_SAMPLES)
def test_template_debris_is_cut_however_the_text_is_split(tokens, expected):
    whole = "".join(tokens)

    @hypothesis_settings(deadline=None, max_examples=40)
    @given(cuts=st.lists(st.integers(min_value=0, max_value=len(whole)), max_size=12))
    def check(cuts):
        points = sorted(set(cuts))
        pieces = [whole[a:b] for a, b in zip([0, *points], [*points, len(whole)], strict=True)]
        assert "".join(_through_the_stream(pieces)) == expected

    check()


def _through_the_stream(pieces: list[str]) -> list[str]:
    """Run text pieces through the client's stream filters as if they had come as deltas."""
    from chat.llm import ChatStream

    class Raw:
        def __init__(self) -> None:
            events = [json.dumps({"choices": [{"delta": {"content": p}}]}) for p in pieces]
            events.append(json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]}))
            self.chunks = [f"data: {e}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]

        def read1(self, amount: int, decode_content: bool = True) -> bytes:
            return self.chunks.pop(0) if self.chunks else b""

    class Response:
        raw = Raw()

        def close(self) -> None:
            pass

    return list(ChatStream(Response(), prompt_chars=""))


def test_the_default_stop_strings_are_sent(client, fake_llm):
    list(open_stream(client))
    assert fake_llm.requests[-1]["json"]["stop"] == ["<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>"]


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ("", 0),
        ("Hello", 0),
        ("Hello <", 1),
        ("Hello <|", 2),
        ("Hello <|im_e", 6),
        ("Hello <|end", 5),  # as long as "<|end_of_text|>" or "<|end|>" could still follow
        ("Hello </", 2),
        ("a < b", 0),
        ("<|im_end|", 9),
    ],
)
def test_a_tail_that_could_grow_into_a_template_marker_is_held_back(text, held):
    assert _partial_tail(text, TEMPLATE_MARKERS) == held
