"""The OpenAI-compatible chat client against a local fake server speaking the real wire format.

Every way the service can go wrong is made to happen: HTTP errors, timeouts,
refused connections, streams cut short, unreadable data, errors on HTTP 200.
No test measures wall-clock time; the fake's records say what happened.
"""

from __future__ import annotations

import contextlib
import json
import socket

import pytest
import requests
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat.llm import (
    Completion,
    LLMError,
    OpenAIChatClient,
    estimate_tokens,
    parse_sse,
    strip_template_debris,
)
from tests.fakes.llm_server import DEFAULT_REPLY_TOKENS, FakeLLMServer, split_tokens

MESSAGES = [
    {"role": "system", "content": "You are Mika, a cheerful companion."},
    {"role": "user", "content": "Shall we go to the beach?"},
]
REPLY = "Hi! *waves* Let's go to the beach. I'll wear my red sundress."


@pytest.fixture
def client(fake_llm):
    return OpenAIChatClient(
        base_url=fake_llm.base_url, model="fake-model", api_key="test-key", read_timeout=5
    )


def stream(client: OpenAIChatClient, **kwargs) -> tuple[list[str], Completion]:
    kwargs.setdefault("max_tokens", 300)
    kwargs.setdefault("temperature", 0.8)
    chat = client.stream_chat(MESSAGES, **kwargs)
    pieces = list(chat)
    return pieces, chat.result


def stream_error(client: OpenAIChatClient, **kwargs) -> tuple[list[str], LLMError]:
    """Stream until the client raises; return the pieces seen before and the error."""
    kwargs.setdefault("max_tokens", 300)
    kwargs.setdefault("temperature", 0.8)
    pieces: list[str] = []
    with pytest.raises(LLMError) as caught:
        for piece in client.stream_chat(MESSAGES, **kwargs):
            pieces.append(piece)
    return pieces, caught.value


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- a good stream -----------------------------------------------------------------


def test_streamed_tokens_arrive_one_by_one_and_join_to_the_reply(client, fake_llm):
    fake_llm.set_reply(REPLY)
    pieces, result = stream(client)
    assert pieces == fake_llm.reply_tokens  # handed on as they came, not re-chunked
    assert "".join(pieces) == REPLY
    assert result.text == REPLY
    assert result.finish_reason == "stop"
    assert fake_llm.wait_for_stream_end()["completed"]


def test_usage_from_the_server_is_used(client, fake_llm):
    _, result = stream(client)
    assert result.usage_estimated is False
    assert result.completion_tokens == len(DEFAULT_REPLY_TOKENS)
    assert result.prompt_tokens == estimate_tokens("".join(m["content"] for m in MESSAGES))


def test_usage_is_estimated_when_the_server_sends_none(client, fake_llm):
    fake_llm.send_usage = False
    _, result = stream(client)
    assert result.usage_estimated is True
    assert result.prompt_tokens > 0
    assert result.completion_tokens == estimate_tokens(result.text) > 0


def test_the_streamed_request_carries_model_options_and_key(client, fake_llm):
    stream(client, max_tokens=123, temperature=0.55)
    [request] = fake_llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer test-key"
    body = request["json"]
    assert body["model"] == "fake-model"
    assert body["messages"] == MESSAGES
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 123
    assert body["temperature"] == 0.55


def test_no_authorization_header_without_a_key(fake_llm):
    keyless = OpenAIChatClient(base_url=fake_llm.base_url + "/", model="local")
    stream(keyless)
    request = fake_llm.requests[-1]
    assert "authorization" not in request["headers"]
    assert request["path"] == "/v1/chat/completions"  # a trailing slash on the base URL is fine


def test_the_first_piece_arrives_while_the_server_is_still_sending(client, fake_llm):
    """Nothing is buffered: the reader sees a token before the rest has even been written."""
    fake_llm.set_reply(" ".join(f"w{i}" for i in range(40)))
    fake_llm.token_delay = 0.05
    chat = client.stream_chat(MESSAGES, max_tokens=100, temperature=0.8)
    first = next(iter(chat))
    assert first == "w0"
    assert fake_llm.streams[-1]["tokens_sent"] < 40
    chat.close()


def test_max_tokens_reached_is_finish_reason_length(client, fake_llm):
    fake_llm.set_reply(REPLY)
    pieces, result = stream(client, max_tokens=4)
    assert pieces == fake_llm.reply_tokens[:4]
    assert result.finish_reason == "length"


def test_done_ends_the_stream_and_comment_lines_are_skipped(client, fake_llm):
    fake_llm.comment_lines = True
    fake_llm.set_reply(REPLY)
    pieces, result = stream(client)
    assert "".join(pieces) == REPLY
    assert "OPENROUTER" not in result.text
    assert fake_llm.wait_for_stream_end()["completed"]


def test_reasoning_never_reaches_the_visible_text(client, fake_llm):
    fake_llm.reasoning = True
    fake_llm.reasoning_text = "Let me think about the beach..."
    fake_llm.set_reply(REPLY)
    pieces, result = stream(client)
    assert result.text == REPLY
    assert not any("think" in piece for piece in pieces)


def test_chunks_with_null_choices_are_harmless(client, fake_llm):
    fake_llm.null_choices = True
    fake_llm.set_reply(REPLY)
    _, result = stream(client)
    assert result.text == REPLY
    assert result.usage_estimated is False


def test_every_oddity_at_once(client, fake_llm):
    fake_llm.comment_lines = fake_llm.reasoning = fake_llm.null_choices = True
    fake_llm.send_usage = False
    fake_llm.set_reply(REPLY)
    _, result = stream(client)
    assert (result.text, result.finish_reason, result.usage_estimated) == (REPLY, "stop", True)


def test_a_template_marker_split_across_tokens_ends_the_reply(client, fake_llm):
    fake_llm.reply_tokens = ["Hi", " there", ".", "<|im", "_end|>", "<|im_start|>user", " more"]
    pieces, result = stream(client)
    assert "".join(pieces) == result.text == "Hi there."
    assert result.finish_reason == "stop"


# --- non-streamed answers ----------------------------------------------------------


def test_complete_returns_the_whole_answer_with_usage(client, fake_llm):
    result = client.complete(MESSAGES, max_tokens=200, temperature=0.2)
    assert result.text == fake_llm.completion_text
    assert '"outfit": "red sundress"' in result.text
    assert result.finish_reason == "stop"
    assert result.usage_estimated is False
    assert result.completion_tokens == estimate_tokens(fake_llm.completion_text)
    body = fake_llm.requests[-1]["json"]
    assert body["stream"] is False
    assert "stream_options" not in body
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("fake-model", 200, 0.2)
    assert fake_llm.requests[-1]["headers"]["authorization"] == "Bearer test-key"


def test_complete_estimates_usage_when_the_server_sends_none(client, fake_llm):
    fake_llm.send_usage = False
    result = client.complete(MESSAGES, max_tokens=200, temperature=0.2)
    assert result.usage_estimated is True
    assert result.prompt_tokens > 0 and result.completion_tokens > 0


def test_complete_strips_template_debris(client, fake_llm):
    fake_llm.completion_text = "All done.<|eot_id|><|start_header_id|>assistant"
    assert client.complete(MESSAGES, max_tokens=50, temperature=0.2).text == "All done."


# --- HTTP errors -------------------------------------------------------------------

HTTP_ERRORS = [
    (401, "auth", False),
    (403, "auth", False),
    (400, "bad_request", False),
    (404, "bad_request", False),
    (422, "bad_request", False),
    (429, "rate_limited", True),
    (500, "server", True),
    (502, "server", True),
    (503, "server", True),
]


@pytest.mark.parametrize(("status", "code", "retryable"), HTTP_ERRORS)
def test_http_errors_of_a_stream(client, fake_llm, status, code, retryable):
    fake_llm.fail_next(status=status)
    with pytest.raises(LLMError) as caught:
        client.stream_chat(MESSAGES, max_tokens=50, temperature=0.8)
    error = caught.value
    assert (error.code, error.retryable, error.status) == (code, retryable, status)
    assert str(status) in error.message
    # One-shot: the next request succeeds.
    assert stream(client)[1].text == fake_llm.reply_text


@pytest.mark.parametrize(("status", "code", "retryable"), HTTP_ERRORS)
def test_http_errors_of_complete(client, fake_llm, status, code, retryable):
    fake_llm.fail_next(status=status)
    with pytest.raises(LLMError) as caught:
        client.complete(MESSAGES, max_tokens=50, temperature=0.2)
    assert (caught.value.code, caught.value.retryable, caught.value.status) == (code, retryable, status)


def test_the_error_message_of_the_service_is_kept(client, fake_llm):
    fake_llm.fail_next(status=401)
    with pytest.raises(LLMError) as caught:
        client.complete(MESSAGES, max_tokens=50, temperature=0.2)
    assert "Incorrect API key provided" in caught.value.message


def test_429_with_retry_after(client, fake_llm):
    fake_llm.fail_next(status=429, retry_after=3)
    with pytest.raises(LLMError) as caught:
        client.stream_chat(MESSAGES, max_tokens=50, temperature=0.8)
    assert caught.value.code == "rate_limited"
    assert caught.value.retryable is True
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize("retry_after", [None, "Wed, 21 Oct 2026 07:28:00 GMT", "soon"])
def test_429_without_a_usable_retry_after(client, fake_llm, retry_after):
    fake_llm.fail_next(status=429, retry_after=retry_after)
    with pytest.raises(LLMError) as caught:
        client.complete(MESSAGES, max_tokens=50, temperature=0.2)
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after is None


def test_an_error_body_that_is_not_json(client, fake_llm):
    fake_llm.fail_next(status=502, body="<html>Bad gateway</html>")
    with pytest.raises(LLMError) as caught:
        client.complete(MESSAGES, max_tokens=50, temperature=0.2)
    assert caught.value.code == "server"
    assert "Bad gateway" in caught.value.message


def test_a_server_that_is_down_then_up(client, fake_llm):
    fake_llm.down()
    for _ in range(2):
        with pytest.raises(LLMError) as caught:
            client.stream_chat(MESSAGES, max_tokens=50, temperature=0.8)
        assert (caught.value.code, caught.value.status, caught.value.retryable) == ("server", 503, True)
    fake_llm.up()
    assert stream(client)[1].text == fake_llm.reply_text


def test_repeated_failures_then_success(client, fake_llm):
    fake_llm.fail_next(status=500, times=2)
    codes = []
    for _ in range(2):
        with pytest.raises(LLMError) as caught:
            client.complete(MESSAGES, max_tokens=50, temperature=0.2)
        codes.append(caught.value.code)
    assert codes == ["server", "server"]
    assert client.complete(MESSAGES, max_tokens=50, temperature=0.2).text == fake_llm.completion_text


def test_only_stream_failures_leave_the_analysis_alone(client, fake_llm):
    fake_llm.fail_next(status=500, only_stream=True)
    assert client.complete(MESSAGES, max_tokens=50, temperature=0.2).text == fake_llm.completion_text
    with pytest.raises(LLMError):
        client.stream_chat(MESSAGES, max_tokens=50, temperature=0.8)


# --- transport failures ------------------------------------------------------------


def test_a_silent_server_is_a_read_timeout(fake_llm):
    impatient = OpenAIChatClient(base_url=fake_llm.base_url, model="m", read_timeout=0.3)
    fake_llm.fail_next(kind="hang", seconds=2, times=2)
    with pytest.raises(LLMError) as caught:
        impatient.stream_chat(MESSAGES, max_tokens=50, temperature=0.8)
    assert (caught.value.code, caught.value.retryable) == ("timeout", True)
    with pytest.raises(LLMError) as caught:
        impatient.complete(MESSAGES, max_tokens=50, temperature=0.2)
    assert (caught.value.code, caught.value.retryable) == ("timeout", True)


def test_a_stream_that_goes_quiet_is_a_timeout_with_the_text_so_far(fake_llm):
    impatient = OpenAIChatClient(base_url=fake_llm.base_url, model="m", read_timeout=0.3)
    fake_llm.set_reply("one two three")
    fake_llm.token_delay = 2
    pieces, error = stream_error(impatient)
    assert (error.code, error.retryable) == ("timeout", True)
    assert pieces == ["one"]
    assert error.partial_text == "one"


def test_connection_refused(fake_llm):
    nowhere = OpenAIChatClient(base_url=f"http://127.0.0.1:{closed_port()}/v1", model="m", connect_timeout=1)
    for call in (
        lambda: nowhere.stream_chat(MESSAGES, max_tokens=50, temperature=0.8),
        lambda: nowhere.complete(MESSAGES, max_tokens=50, temperature=0.2),
    ):
        with pytest.raises(LLMError) as caught:
            call()
        assert (caught.value.code, caught.value.retryable) == ("connection", True)


def test_a_stopped_server_refuses_connections(fake_llm):
    lonely = OpenAIChatClient(base_url=fake_llm.base_url, model="m", connect_timeout=1)
    assert stream(lonely)[1].text == fake_llm.reply_text
    fake_llm.stop()
    with pytest.raises(LLMError) as caught:
        lonely.stream_chat(MESSAGES, max_tokens=50, temperature=0.8)
    assert caught.value.code == "connection"


def test_a_disconnect_mid_stream_is_incomplete_with_the_partial_text(client, fake_llm):
    fake_llm.set_reply(REPLY)
    fake_llm.fail_next(kind="disconnect", after_tokens=3)
    pieces, error = stream_error(client)
    assert (error.code, error.retryable) == ("incomplete", True)
    expected = "".join(fake_llm.reply_tokens[:3])
    assert "".join(pieces) == error.partial_text == expected
    assert fake_llm.wait_for_stream_end()["dropped"]


def test_a_stream_that_ends_without_done_or_finish_reason_is_incomplete(client, fake_llm):
    """A cleanly ended body is not enough: a proxy that gives up ends it cleanly too."""
    fake_llm.set_reply(REPLY)
    fake_llm.fail_next(kind="truncate", after_tokens=4)
    pieces, error = stream_error(client)
    assert error.code == "incomplete"
    assert error.partial_text == "".join(pieces) == "".join(fake_llm.reply_tokens[:4])


def test_a_disconnect_mid_answer_of_complete(client, fake_llm):
    fake_llm.fail_next(kind="disconnect")
    with pytest.raises(LLMError) as caught:
        client.complete(MESSAGES, max_tokens=50, temperature=0.2)
    assert caught.value.retryable is True
    assert caught.value.code in {"connection", "incomplete"}


# --- unreadable data and errors on HTTP 200 ----------------------------------------


def test_garbage_in_the_stream_is_a_bad_response(client, fake_llm):
    fake_llm.fail_next(kind="garbage")
    _, error = stream_error(client)
    assert (error.code, error.retryable) == ("bad_response", True)


def test_garbage_instead_of_an_answer_is_a_bad_response(client, fake_llm):
    fake_llm.fail_next(kind="garbage")
    with pytest.raises(LLMError) as caught:
        client.complete(MESSAGES, max_tokens=50, temperature=0.2)
    assert (caught.value.code, caught.value.retryable) == ("bad_response", True)


def test_an_error_object_on_http_200_in_a_stream(client, fake_llm):
    fake_llm.fail_next(kind="error_200")
    pieces, error = stream_error(client)
    assert pieces == []
    assert error.code == "bad_response"
    assert error.retryable is True
    assert "upstream overloaded" in error.message


def test_an_error_object_on_http_200_instead_of_an_answer(client, fake_llm):
    fake_llm.fail_next(kind="error_200")
    with pytest.raises(LLMError) as caught:
        client.complete(MESSAGES, max_tokens=50, temperature=0.2)
    assert caught.value.code == "bad_response"
    assert "upstream overloaded" in caught.value.message


# --- closing a stream --------------------------------------------------------------


def test_close_stops_the_stream_and_the_server_sees_it(client, fake_llm):
    fake_llm.set_reply(" ".join(f"w{i}" for i in range(200)))
    fake_llm.token_delay = 0.05
    chat = client.stream_chat(MESSAGES, max_tokens=500, temperature=0.8)
    pieces = []
    with contextlib.suppress(LLMError):
        for piece in chat:
            pieces.append(piece)
            if len(pieces) == 2:
                chat.close()
    assert len(pieces) == 2
    record = fake_llm.wait_for_stream_end(timeout=10)
    assert record["client_disconnected"]
    assert not record["completed"]
    assert record["tokens_sent"] < 20


def test_breaking_out_of_the_loop_closes_the_connection(client, fake_llm):
    fake_llm.set_reply(" ".join(f"w{i}" for i in range(200)))
    fake_llm.token_delay = 0.05
    chat = client.stream_chat(MESSAGES, max_tokens=500, temperature=0.8)
    pieces = []
    for piece in chat:
        pieces.append(piece)
        if len(pieces) == 2:
            break
    chat.close()
    record = fake_llm.wait_for_stream_end(timeout=10)
    assert record["client_disconnected"] and record["tokens_sent"] < 20


def test_the_connection_is_reused_after_a_finished_stream(client, fake_llm):
    stream(client)
    client.complete(MESSAGES, max_tokens=50, temperature=0.2)
    stream(client)
    assert len(fake_llm.requests) == 3
    assert len(fake_llm.first_token_sent_at) == 2


# --- the pieces: parse_sse, strip_template_debris, estimate_tokens -----------------


def sse(*events: str) -> bytes:
    return "".join(f"{event}\n\n" for event in events).encode()


def test_parse_sse_skips_comments_and_blank_lines_and_stops_at_done():
    raw = sse(
        ": OPENROUTER PROCESSING", 'data: {"a": 1}', "", 'data: {"b": 2}', "data: [DONE]", 'data: {"c": 3}'
    )
    assert list(parse_sse([raw])) == [{"a": 1}, {"b": 2}]


def test_parse_sse_handles_crlf_and_data_without_a_space():
    raw = b'data:{"a": 1}\r\n\r\n: keep-alive\r\n\r\ndata: {"b": 2}\r\n\r\ndata: [DONE]\r\n\r\n'
    assert list(parse_sse([raw])) == [{"a": 1}, {"b": 2}]


def test_parse_sse_reads_a_last_event_without_a_blank_line():
    assert list(parse_sse([b'data: {"a": 1}\n\ndata: {"b": 2}'])) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize("payload", [b"data: {not json\n\n", b"data: [1, 2]\n\n", b'data: "text"\n\n'])
def test_parse_sse_refuses_what_is_not_a_json_object(payload):
    with pytest.raises(LLMError) as caught:
        list(parse_sse([payload]))
    assert caught.value.code == "bad_response"


json_objects = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans()),
    max_size=4,
)


@hypothesis_settings(deadline=None)
@given(
    payloads=st.lists(json_objects, max_size=8),
    comments=st.lists(
        st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12), max_size=3
    ),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_parse_sse_does_not_depend_on_how_the_bytes_are_split(payloads, comments, crlf, cuts):
    newline = "\r\n" if crlf else "\n"
    parts = [f": {comment}{newline}{newline}" for comment in comments]
    for payload in payloads:
        # ensure_ascii=False puts multi-byte characters on the wire, so cuts land inside them.
        parts.append(f"data: {json.dumps(payload, ensure_ascii=False)}{newline}{newline}")
    parts.append(f"data: [DONE]{newline}{newline}")
    parts.append(f'data: {{"after": "done"}}{newline}{newline}')
    raw = "".join(parts).encode()
    points = sorted({cut % (len(raw) + 1) for cut in cuts})
    chunks = [raw[start:end] for start, end in zip([0, *points], [*points, len(raw)], strict=True)]
    assert b"".join(chunks) == raw
    assert list(parse_sse(iter(chunks))) == payloads


@hypothesis_settings(deadline=None)
@given(text=st.text(max_size=40), cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_streamed_text_survives_any_split(text, cuts):
    """Token text split across chunks at any byte, even inside a UTF-8 character."""
    raw = sse(*(f"data: {json.dumps({'t': ch}, ensure_ascii=False)}" for ch in text)) + b"data: [DONE]\n\n"
    points = sorted({cut % (len(raw) + 1) for cut in cuts})
    chunks = [raw[start:end] for start, end in zip([0, *points], [*points, len(raw)], strict=True)]
    assert "".join(p["t"] for p in parse_sse(chunks)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Plain reply.", "Plain reply."),
        ("Hello!<|im_end|>", "Hello!"),
        ("Hello!<|eot_id|><|start_header_id|>user<|end_header_id|>", "Hello!"),
        ("Bye</s> junk", "Bye"),
        ("Done<|end|>\n<|user|> more", "Done"),
        ("Hey<end_of_turn>\n<start_of_turn>user", "Hey"),
        ("A<|endoftext|>B<|im_end|>C", "A"),
        ("", ""),
    ],
)
def test_strip_template_debris(text, expected):
    assert strip_template_debris(text) == expected


def test_estimate_tokens():
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


def test_split_tokens_of_the_fake_join_back():
    assert "".join(split_tokens(REPLY)) == REPLY
    assert split_tokens("Hi *waves*") == ["Hi", " *", "waves", "*"]


# --- the fake itself ----------------------------------------------------------------


def test_the_fake_answers_models_and_other_prefixes():
    with FakeLLMServer() as server:
        models = requests.get(server.base_url + "/models", timeout=5).json()
        assert models["data"][0]["id"] == "fake-model"
        other = OpenAIChatClient(base_url=server.origin + "/api/openai/v1", model="m")
        assert stream(other)[1].text == server.reply_text
        assert server.requests[-1]["path"] == "/api/openai/v1/chat/completions"
    assert not server.running
