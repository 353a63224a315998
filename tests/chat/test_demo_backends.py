"""The offline demo back ends: same interfaces as the real clients, no network."""

import base64
import io
import json

import pytest
from PIL import Image

from chat.demo_images import DemoImages
from chat.demo_llm import STORY, STORY_PART_WORDS, DemoLLM
from chat.images import ImageRequest
from chat.prompts import (
    CONTINUE_PROMPT,
    SceneState,
    build_analysis_messages,
    build_chat_messages,
    extract_state,
)
from tests.companions.factories import make_companion


def test_the_analysis_is_well_formed_json_from_keywords(user):
    companion = make_companion(user)
    messages = build_analysis_messages(
        companion, text="Let's go to the beach and swim! Send a selfie", speaker="Alice"
    )
    text = DemoLLM(token_delay=0).complete(messages, max_tokens=200, temperature=0.2).text
    data = json.loads(text)
    assert data["location"] == "at the beach"
    assert data["action"] == "swimming"
    assert data["wants_image"] is True
    state = extract_state(text, current=SceneState("x", "y", "z"))
    assert state.location == "at the beach"


def test_unchanged_values_stay(user):
    companion = make_companion(user, current_outfit="a green coat")
    messages = build_analysis_messages(companion, text="How are you?", speaker="Alice")
    data = json.loads(DemoLLM(token_delay=0).complete(messages, max_tokens=200, temperature=0.2).text)
    assert data["outfit"] == "a green coat"
    assert data["wants_image"] is False


def test_the_reply_streams_in_character(user):
    companion = make_companion(user)
    messages = build_chat_messages(companion, user_name="Alice", history=[("user", "Hi there")])
    stream = DemoLLM(token_delay=0).stream_chat(messages, max_tokens=300, temperature=0.8)
    pieces = list(stream)
    assert len(pieces) > 5
    assert "".join(pieces) == stream.result.text
    assert "Alice" in stream.result.text
    assert stream.result.usage_estimated and stream.result.completion_tokens > 0


def test_close_stops_the_stream(user):
    companion = make_companion(user)
    messages = build_chat_messages(companion, user_name="Alice", history=[("user", "Hi")])
    stream = DemoLLM(token_delay=0).stream_chat(messages, max_tokens=300, temperature=0.8)
    read = []
    for piece in stream:
        read.append(piece)
        stream.close()
    assert len(read) == 1


def test_the_demo_picture_is_a_labelled_png_of_the_requested_size():
    data = DemoImages().generate(ImageRequest(prompt="a cat on a sofa", width=320, height=480))
    picture = Image.open(io.BytesIO(base64.b64decode(data)))
    assert picture.format == "PNG"
    assert picture.size == (320, 480)


def _chat(user, text: str) -> list[dict]:
    return build_chat_messages(make_companion(user), user_name="Alice", history=[("user", text)])


def _stream(messages: list[dict], *, max_tokens: int = 300, avoid: tuple[str, ...] = ()):
    stream = DemoLLM(token_delay=0).stream_chat(messages, max_tokens=max_tokens, temperature=0.8, avoid=avoid)
    list(stream)
    return stream.result


def _continue(messages: list[dict], start: str, *, max_tokens: int = 300):
    asked = [*messages, {"role": "assistant", "content": start}, {"role": "user", "content": CONTINUE_PROMPT}]
    return _stream(asked, max_tokens=max_tokens)


@pytest.mark.parametrize(
    ("text", "wants"),
    [
        ("Let's have a picnic in the park", False),
        ("What an epic topic", False),
        ("Send me a picture", True),
        ("A photo please!", True),
        ("Selfie time", True),
        ("Show me your new dress", True),
        ("Can I see pics?", True),
    ],
)
def test_the_picture_keyword_matches_whole_words_only(user, text, wants):
    messages = build_analysis_messages(make_companion(user), text=text, speaker="Alice")
    data = json.loads(DemoLLM(token_delay=0).complete(messages, max_tokens=200, temperature=0.2).text)
    assert data["wants_image"] is wants


def test_the_same_prompt_gets_the_same_reply(user):
    messages = _chat(user, "Hi there")
    assert _stream(messages).text == _stream(messages).text


def test_again_gives_a_reply_unlike_every_earlier_version(user):
    messages = _chat(user, "Hi there")
    versions: list[str] = []
    for _ in range(12):  # more than a reply keeps, all different
        reply = _stream(messages, avoid=tuple(versions)).text
        assert reply not in versions
        versions.append(reply)


def test_a_short_reply_ends_normally(user):
    assert _stream(_chat(user, "Hi there")).finish_reason == "stop"


def test_a_story_stops_at_the_length_limit_and_continue_carries_it_on(user):
    messages = _chat(user, "Tell me a long story")
    first = _stream(messages)
    assert first.finish_reason == "length"
    assert len(first.text.split()) == STORY_PART_WORDS
    told = first.text.strip()
    parts = 1
    while True:
        more = _continue(messages, told)
        assert more.text.startswith(" ")  # carries on after the last word, nothing repeated
        told = (told + more.text).rstrip()
        parts += 1
        if more.finish_reason == "stop":
            break
        assert more.finish_reason == "length" and parts < 10
    assert parts > 2
    assert told == STORY.format(user="Alice")


def test_the_length_limit_cuts_a_story_shorter_than_a_part(user):
    result = _stream(_chat(user, "A story please"), max_tokens=10)
    assert result.finish_reason == "length"
    assert len(result.text.split()) == 10


def test_a_short_reply_cut_by_max_tokens_is_continued_to_its_end(user):
    messages = _chat(user, "Hi there")
    whole = _stream(messages).text
    cut = _stream(messages, max_tokens=5)
    assert cut.finish_reason == "length"
    rest = _continue(messages, cut.text.strip())
    assert rest.finish_reason == "stop"
    assert cut.text.strip() + rest.text == whole


def test_again_after_a_story_gives_another_reply(user):
    messages = _chat(user, "Tell me a story")
    first = _stream(messages).text.strip()
    assert not _stream(messages, avoid=(first,)).text.startswith(first)


def test_an_unknown_start_gets_a_short_ending(user):
    result = _continue(_chat(user, "Hi there"), "Something the demo never wrote")
    assert result.finish_reason == "stop" and result.text.strip()
