"""The offline demo back ends: same interfaces as the real clients, no network."""

import base64
import io
import json

from PIL import Image

from chat.demo_images import DemoImages
from chat.demo_llm import DemoLLM
from chat.images import ImageRequest
from chat.prompts import SceneState, build_analysis_messages, build_chat_messages, extract_state
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
