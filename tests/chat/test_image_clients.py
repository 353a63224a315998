"""The picture clients (SD WebUI / Forge, OpenAI images) against a local fake service.

The clients hand back base64 text without trusting it; ``media.imaging``
decodes and validates. So an unreadable picture is shown to fail there, while
a missing picture or an answer that is no JSON fails in the client.
"""

from __future__ import annotations

import base64
import io
import json
import socket

import pytest
import requests
from django.conf import settings
from PIL import Image

from chat.images import ImageBackendError, ImageRequest, OpenAIImagesClient, SDWebUIClient
from media.imaging import ImageRejected, decode_image_input, optimize_image
from tests.fakes.sd_server import FakeSDServer

REQUEST = ImageRequest(
    prompt="Mika in a red sundress, walking on the sand, at the beach",
    negative_prompt="lowres, bad hands",
    width=640,
    height=960,
    steps=20,
    cfg_scale=6.5,
    sampler="Euler a",
    seed=1234,
)
FAST = (2.0, 5.0)


@pytest.fixture
def sd(fake_sd):
    return SDWebUIClient(base_url=fake_sd.base_url, timeout=FAST)


@pytest.fixture
def openai_images(fake_sd):
    return OpenAIImagesClient(
        base_url=fake_sd.base_url + "/v1", api_key="img-key", model="fake-image-model", timeout=FAST
    )


def decode(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    image.load()
    return image


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def validate(data: str) -> None:
    """What ``store_image`` does to the bytes before anything is written."""
    raw = decode_image_input(data, max_bytes=settings.IMAGE_MAX_BYTES)
    optimize_image(
        raw, max_side=1024, max_bytes=settings.IMAGE_MAX_BYTES, max_pixels=settings.IMAGE_MAX_PIXELS
    )


# --- SD WebUI / Forge --------------------------------------------------------------


def test_sd_returns_a_png_of_the_requested_size(sd):
    picture = decode(sd.generate(REQUEST))
    assert picture.format == "PNG"
    assert picture.size == (640, 960)


def test_sd_default_size_is_portrait(sd, fake_sd):
    picture = decode(sd.generate(ImageRequest(prompt="a cat")))
    assert picture.size == (832, 1216)
    assert fake_sd.requests[-1]["json"]["seed"] == -1


def test_the_sd_picture_passes_the_media_validation(sd):
    validate(sd.generate(REQUEST))


def test_the_sd_request_carries_the_whole_scene(sd, fake_sd):
    sd.generate(REQUEST)
    [request] = fake_sd.requests
    assert request["method"] == "POST"
    assert request["path"] == "/sdapi/v1/txt2img"
    body = request["json"]
    assert body["prompt"] == REQUEST.prompt
    assert body["negative_prompt"] == "lowres, bad hands"
    assert (body["width"], body["height"]) == (640, 960)
    assert body["steps"] == 20
    assert body["cfg_scale"] == 6.5
    assert body["sampler_name"] == "Euler a"
    assert body["seed"] == 1234
    assert "authorization" not in request["headers"]


def test_a_trailing_slash_on_the_sd_url_is_fine(fake_sd):
    client = SDWebUIClient(base_url=fake_sd.base_url + "/", timeout=FAST)
    client.generate(REQUEST)
    assert fake_sd.requests[-1]["path"] == "/sdapi/v1/txt2img"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (500, "server", True),
        (502, "server", True),
        (503, "server", True),
        (429, "server", True),
        (401, "auth", False),
        (403, "auth", False),
        (400, "bad_request", False),
        (422, "bad_request", False),
    ],
)
def test_sd_http_errors(sd, fake_sd, status, code, retryable):
    fake_sd.fail_next(status=status)
    with pytest.raises(ImageBackendError) as caught:
        sd.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable, caught.value.status) == (code, retryable, status)
    decode(sd.generate(REQUEST))  # one-shot: the next picture comes


def test_sd_down_then_up(sd, fake_sd):
    fake_sd.down()
    with pytest.raises(ImageBackendError) as caught:
        sd.generate(REQUEST)
    assert (caught.value.code, caught.value.status) == ("server", 503)
    fake_sd.up()
    decode(sd.generate(REQUEST))


@pytest.mark.parametrize("kind", ["empty", "not_json"])
def test_sd_without_a_picture_is_a_bad_response(sd, fake_sd, kind):
    fake_sd.fail_next(kind=kind)
    with pytest.raises(ImageBackendError) as caught:
        sd.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable) == ("bad_response", True)


@pytest.mark.parametrize(("kind", "rejected"), [("garbage", "bad_base64"), ("not_png", "not_an_image")])
def test_an_unreadable_sd_picture_is_refused_by_the_media_validation(sd, fake_sd, kind, rejected):
    fake_sd.fail_next(kind=kind)
    data = sd.generate(REQUEST)
    with pytest.raises(ImageRejected) as caught:
        validate(data)
    assert caught.value.code == rejected


def test_a_silent_sd_is_a_timeout(fake_sd):
    impatient = SDWebUIClient(base_url=fake_sd.base_url, timeout=(1.0, 0.3))
    fake_sd.fail_next(kind="hang", seconds=2)
    with pytest.raises(ImageBackendError) as caught:
        impatient.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable) == ("timeout", True)


def test_sd_refusing_connections(fake_sd):
    client = SDWebUIClient(base_url=f"http://127.0.0.1:{closed_port()}", timeout=(1.0, 1.0))
    with pytest.raises(ImageBackendError) as caught:
        client.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable) == ("connection", True)


def test_sd_hanging_up_without_an_answer(sd, fake_sd):
    fake_sd.fail_next(kind="disconnect")
    with pytest.raises(ImageBackendError) as caught:
        sd.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable) == ("connection", True)


def test_the_fake_sd_answers_health_probes_and_echoes_parameters(fake_sd):
    options = requests.get(fake_sd.base_url + "/sdapi/v1/options", timeout=5).json()
    models = requests.get(fake_sd.base_url + "/sdapi/v1/sd-models", timeout=5).json()
    assert options["sd_model_checkpoint"] == models[0]["title"]
    answer = requests.post(
        fake_sd.base_url + "/sdapi/v1/txt2img", json={"prompt": "a cat", "seed": 7}, timeout=5
    ).json()
    assert answer["parameters"] == {"prompt": "a cat", "seed": 7}
    assert json.loads(answer["info"])["seed"] == 7
    assert decode(answer["images"][0]).size == (512, 512)


# --- OpenAI images -----------------------------------------------------------------


def test_openai_images_b64_json_is_decoded_to_the_requested_size(openai_images, fake_sd):
    picture = decode(openai_images.generate(REQUEST))
    assert picture.format == "PNG"
    assert picture.size == (640, 960)
    [request] = fake_sd.requests
    assert request["path"] == "/v1/images/generations"
    assert request["headers"]["authorization"] == "Bearer img-key"
    body = request["json"]
    assert body["prompt"] == REQUEST.prompt
    assert body["size"] == "640x960"
    assert body["response_format"] == "b64_json"
    assert body["model"] == "fake-image-model"
    assert body["n"] == 1


def test_openai_images_without_a_model_or_key(fake_sd):
    client = OpenAIImagesClient(base_url=fake_sd.base_url + "/v1", timeout=FAST)
    decode(client.generate(REQUEST))
    request = fake_sd.requests[-1]
    assert "model" not in request["json"]
    assert "authorization" not in request["headers"]


@pytest.mark.parametrize(
    ("failure", "code", "retryable"),
    [
        ({"status": 500}, "server", True),
        ({"status": 401}, "auth", False),
        ({"status": 400}, "bad_request", False),
        ({"kind": "empty"}, "bad_response", True),
        ({"kind": "not_json"}, "bad_response", True),
    ],
)
def test_openai_images_failures(openai_images, fake_sd, failure, code, retryable):
    fake_sd.fail_next(**failure)
    with pytest.raises(ImageBackendError) as caught:
        openai_images.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


def test_openai_images_timeout(fake_sd):
    impatient = OpenAIImagesClient(base_url=fake_sd.base_url + "/v1", timeout=(1.0, 0.3))
    fake_sd.fail_next(kind="hang", seconds=2)
    with pytest.raises(ImageBackendError) as caught:
        impatient.generate(REQUEST)
    assert caught.value.code == "timeout"


def test_png_sizes_are_cached_and_stop_is_quick():
    with FakeSDServer() as server:
        client = SDWebUIClient(base_url=server.base_url, timeout=FAST)
        first, second = client.generate(REQUEST), client.generate(REQUEST)
        assert first == second
        server.fail_next(kind="hang", seconds=30)
        with pytest.raises(ImageBackendError):
            SDWebUIClient(base_url=server.base_url, timeout=(1.0, 0.2)).generate(REQUEST)
    # The hanging handler woke up when the server stopped; the port is closed.
    with pytest.raises(ImageBackendError) as caught:
        client.generate(REQUEST)
    assert caught.value.code == "connection"


# --- SD WebUI: a reference picture (img2img) and progress ----------------------------


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


def test_sd_with_a_reference_paints_through_img2img(sd, fake_sd):
    reference = _jpeg()
    request = ImageRequest(prompt="a cat", width=64, height=96, seed=9, reference_image=reference,
                           reference_strength=0.45)  # fmt: skip
    assert decode(sd.generate(request)).size == (64, 96)
    [call] = fake_sd.requests
    assert call["path"] == "/sdapi/v1/img2img"
    assert base64.b64decode(call["json"]["init_images"][0]) == reference
    assert call["json"]["denoising_strength"] == 0.45
    assert call["json"]["seed"] == 9


def test_sd_without_a_reference_stays_on_txt2img(sd, fake_sd):
    sd.generate(ImageRequest(prompt="a cat", width=64, height=64))
    assert "init_images" not in fake_sd.requests[-1]["json"]
    assert fake_sd.requests[-1]["path"] == "/sdapi/v1/txt2img"


def test_a_reference_strength_outside_0_to_1_is_refused():
    with pytest.raises(ValueError):
        ImageRequest(prompt="a cat", reference_strength=1.5)


def test_sd_progress_is_polled_while_painting(fake_sd):
    client = SDWebUIClient(base_url=fake_sd.base_url, timeout=FAST, progress_interval=0.05)
    fake_sd.delay = 0.6
    seen: list[int] = []
    decode(client.generate(ImageRequest(prompt="a cat", width=64, height=64), on_progress=seen.append))
    polls = [r for r in fake_sd.requests if r["path"].startswith("/sdapi/v1/progress")]
    assert polls, "the progress API was not asked"
    assert seen and seen == sorted(set(seen))  # rising, no repeats
    assert all(0 < p <= 99 for p in seen)  # 0 is the idle WebUI's answer: nothing to show


def test_sd_progress_failing_does_not_fail_the_picture(fake_sd):
    client = SDWebUIClient(base_url=fake_sd.base_url, timeout=FAST, progress_interval=0.05)
    fake_sd.delay = 0.3

    def explode(percent: int) -> None:
        raise RuntimeError("boom")

    decode(client.generate(ImageRequest(prompt="a cat", width=64, height=64), on_progress=explode))


def test_sd_without_a_reporter_never_polls(sd, fake_sd):
    sd.generate(ImageRequest(prompt="a cat", width=64, height=64))
    assert [r["path"] for r in fake_sd.requests] == ["/sdapi/v1/txt2img"]


def test_the_fake_img2img_wants_init_images(fake_sd):
    answer = requests.post(fake_sd.base_url + "/sdapi/v1/img2img", json={"prompt": "a cat"}, timeout=5)
    assert answer.status_code == 422
