"""The ComfyUI client against a fake ComfyUI speaking its wire format (HTTP + progress websocket)."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from chat.comfyui import ComfyUIClient, WorkflowError, default_workflow, fill_workflow, validate_workflow
from chat.images import ImageBackendError, ImageRequest

FAST = (2.0, 5.0)
REQUEST = ImageRequest(
    prompt="Mika in a red sundress, at the beach",
    negative_prompt="lowres, bad hands",
    width=640,
    height=960,
    steps=20,
    cfg_scale=6.5,
    seed=1234,
)
REFERENCE_WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "{{reference_image}}"}},
    "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": 8, "cfg": 5.0, "denoise": 0.6}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": "{{width}}", "height": "{{height}}"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "photo, {{prompt}}"}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}},
}


@pytest.fixture
def comfy(fake_comfyui):
    return ComfyUIClient(base_url=fake_comfyui.base_url, timeout=FAST)


def decode(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    image.load()
    return image


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 100, 50)).save(out, format="JPEG")
    return out.getvalue()


def test_the_default_workflow_paints_the_requested_size(comfy, fake_comfyui):
    picture = decode(comfy.generate(REQUEST))
    assert picture.size == (640, 960)
    [prompt] = fake_comfyui.prompts
    nodes = prompt["workflow"]
    assert nodes["3"]["inputs"]["seed"] == 1234  # a number, not "1234"
    assert nodes["3"]["inputs"]["steps"] == 20
    assert nodes["3"]["inputs"]["cfg"] == 6.5
    assert (nodes["5"]["inputs"]["width"], nodes["5"]["inputs"]["height"]) == (640, 960)
    assert nodes["6"]["inputs"]["text"] == REQUEST.prompt
    assert nodes["7"]["inputs"]["text"] == "lowres, bad hands"
    paths = [r["path"].split("?")[0] for r in fake_comfyui.requests]
    # The socket is open before the prompt is queued, so no progress message is missed.
    assert paths[:2] == ["/ws", "/prompt"]
    assert paths[2:] == [f"/history/{prompt['prompt_id']}", "/view"]
    assert prompt["client_id"] in fake_comfyui.requests[0]["path"]


def test_progress_arrives_in_percent_from_the_websocket(comfy, fake_comfyui):
    fake_comfyui.progress_steps = 4
    seen: list[int] = []
    comfy.generate(REQUEST, on_progress=seen.append)
    assert seen == [25, 50, 75, 99]


def test_a_broken_progress_reporter_does_not_end_the_picture(comfy):
    def explode(percent: int) -> None:
        raise RuntimeError("boom")

    decode(comfy.generate(REQUEST, on_progress=explode))


def test_any_seed_is_picked_by_us(comfy, fake_comfyui):
    comfy.generate(ImageRequest(prompt="a cat", width=64, height=64))
    seed = fake_comfyui.prompts[-1]["workflow"]["3"]["inputs"]["seed"]
    assert isinstance(seed, int) and seed >= 0


def test_a_reference_picture_is_uploaded_and_named_in_the_workflow(fake_comfyui):
    client = ComfyUIClient(base_url=fake_comfyui.base_url, workflow=REFERENCE_WORKFLOW, timeout=FAST)
    reference = jpeg()
    decode(
        client.generate(ImageRequest(prompt="a cat", width=64, height=96, seed=7, reference_image=reference))
    )
    [upload] = fake_comfyui.uploads
    assert upload["data"] == reference
    assert upload["type"] == "input"
    assert upload["filename"].startswith("companionhub-")
    nodes = fake_comfyui.prompts[-1]["workflow"]
    assert nodes["1"]["inputs"]["image"] == upload["filename"]
    assert nodes["6"]["inputs"]["text"] == "photo, a cat"  # inside a longer string: text
    assert nodes["3"]["inputs"]["seed"] == 7


def test_a_reference_workflow_without_a_reference_is_a_clear_error(fake_comfyui):
    client = ComfyUIClient(base_url=fake_comfyui.base_url, workflow=REFERENCE_WORKFLOW, timeout=FAST)
    with pytest.raises(WorkflowError) as caught:
        client.generate(ImageRequest(prompt="a cat"))
    assert caught.value.code == "bad_workflow"
    assert not caught.value.retryable
    assert "reference" in caught.value.message
    assert fake_comfyui.prompts == []


def test_without_a_workflow_a_reference_paints_through_the_shipped_img2img(comfy, fake_comfyui):
    reference = jpeg()
    picture = decode(comfy.generate(ImageRequest(prompt="a cat", width=64, height=96, seed=3,
                                                 reference_image=reference)))  # fmt: skip
    assert picture.size == (64, 96)
    [upload] = fake_comfyui.uploads
    assert upload["data"] == reference
    nodes = fake_comfyui.prompts[-1]["workflow"]
    [load] = [n for n in nodes.values() if n["class_type"] == "LoadImage"]
    assert load["inputs"]["image"] == upload["filename"]
    assert not any(n["class_type"] == "EmptyLatentImage" for n in nodes.values())
    comfy.generate(ImageRequest(prompt="a cat", width=64, height=64))  # and text-only again after
    assert any(n["class_type"] == "EmptyLatentImage" for n in fake_comfyui.prompts[-1]["workflow"].values())


def test_a_connections_own_text_workflow_ignores_a_reference(fake_comfyui):
    client = ComfyUIClient(base_url=fake_comfyui.base_url, workflow=default_workflow(), timeout=FAST)
    client.generate(ImageRequest(prompt="a cat", width=64, height=64, reference_image=jpeg()))
    assert fake_comfyui.uploads == []


def test_the_shipped_workflows_use_only_known_placeholders():
    assert "reference_image" not in validate_workflow(default_workflow())
    assert "reference_image" in validate_workflow(default_workflow(reference=True))


def test_an_unknown_placeholder_is_refused_before_anything_is_sent(fake_comfyui):
    workflow = default_workflow()
    workflow["6"]["inputs"]["text"] = "{{prompt}}, {{mood}}"
    with pytest.raises(WorkflowError) as caught:
        ComfyUIClient(base_url=fake_comfyui.base_url, workflow=workflow, timeout=FAST)
    assert "{{mood}}" in caught.value.message
    assert fake_comfyui.requests == []


@pytest.mark.parametrize(
    "workflow",
    [[], {}, {"3": {"inputs": {}}}, {"3": {"class_type": "KSampler"}}, "{}"],
)
def test_a_workflow_not_in_api_format_is_refused(workflow):
    with pytest.raises(WorkflowError):
        validate_workflow(workflow)


def test_fill_workflow_types_and_leaves_the_original_alone():
    workflow = default_workflow()
    filled = fill_workflow(
        workflow,
        {"prompt": "p", "negative_prompt": "n", "seed": "42", "width": 64, "height": 32, "steps": 3,
         "cfg_scale": 7, "reference_image": None},
    )  # fmt: skip
    assert filled["3"]["inputs"]["seed"] == 42
    assert isinstance(filled["3"]["inputs"]["cfg"], float)
    assert workflow["3"]["inputs"]["seed"] == "{{seed}}"
    assert validate_workflow(workflow) == {
        "prompt", "negative_prompt", "seed", "width", "height", "steps", "cfg_scale"
    }  # fmt: skip


@pytest.mark.parametrize(("status", "code", "retryable"), [(500, "server", True), (401, "auth", False)])
def test_http_errors_on_prompt(comfy, fake_comfyui, status, code, retryable):
    fake_comfyui.fail_next(status=status)
    with pytest.raises(ImageBackendError) as caught:
        comfy.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable, caught.value.status) == (code, retryable, status)
    decode(comfy.generate(REQUEST))  # one-shot: the next picture comes


def test_a_workflow_comfyui_refuses_is_not_retried(comfy, fake_comfyui):
    fake_comfyui.fail_next(kind="bad_workflow")
    with pytest.raises(ImageBackendError) as caught:
        comfy.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable, caught.value.status) == ("bad_request", False, 400)
    assert "node_errors" in caught.value.message


def test_an_execution_error_on_the_socket(comfy, fake_comfyui):
    fake_comfyui.fail_next(kind="execution_error")
    with pytest.raises(ImageBackendError) as caught:
        comfy.generate(REQUEST)
    assert caught.value.code == "execution_error"
    assert "out of memory" in caught.value.message


def test_finished_without_outputs_is_a_bad_response(comfy, fake_comfyui):
    fake_comfyui.fail_next(kind="no_outputs")
    with pytest.raises(ImageBackendError) as caught:
        comfy.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable) == ("bad_response", True)


def test_an_html_page_with_200_is_never_a_picture(comfy, fake_comfyui):
    fake_comfyui.fail_next(kind="html")
    with pytest.raises(ImageBackendError) as caught:
        comfy.generate(REQUEST)
    assert caught.value.code == "bad_response"
    assert "text/html" in caught.value.message


def test_view_failing(comfy, fake_comfyui):
    fake_comfyui.fail_next(kind="view_status", status=500)
    with pytest.raises(ImageBackendError) as caught:
        comfy.generate(REQUEST)
    assert (caught.value.code, caught.value.status) == ("server", 500)


def test_upload_failing(fake_comfyui):
    client = ComfyUIClient(base_url=fake_comfyui.base_url, workflow=REFERENCE_WORKFLOW, timeout=FAST)
    fake_comfyui.fail_next(kind="upload_status", status=503)
    with pytest.raises(ImageBackendError) as caught:
        client.generate(ImageRequest(prompt="a cat", reference_image=jpeg()))
    assert (caught.value.code, caught.value.retryable) == ("server", True)
    assert fake_comfyui.prompts == []


def test_a_silent_comfyui_is_a_timeout(fake_comfyui):
    impatient = ComfyUIClient(base_url=fake_comfyui.base_url, timeout=(1.0, 0.3))
    fake_comfyui.fail_next(kind="hang", seconds=3)
    with pytest.raises(ImageBackendError) as caught:
        impatient.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable) == ("timeout", True)


def test_a_socket_closed_mid_picture(comfy, fake_comfyui):
    fake_comfyui.fail_next(kind="disconnect")
    with pytest.raises(ImageBackendError) as caught:
        comfy.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable) == ("connection", True)


def test_a_refused_socket(comfy, fake_comfyui):
    fake_comfyui.ws_reject_status = 403
    with pytest.raises(ImageBackendError) as caught:
        comfy.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable) == ("auth", False)


def test_nothing_listening_is_a_connection_error():
    from tests.chat.test_image_clients import closed_port

    client = ComfyUIClient(base_url=f"http://127.0.0.1:{closed_port()}", timeout=(1.0, 1.0))
    with pytest.raises(ImageBackendError) as caught:
        client.generate(REQUEST)
    assert (caught.value.code, caught.value.retryable) == ("connection", True)


def test_the_key_goes_on_every_call(fake_comfyui):
    client = ComfyUIClient(base_url=fake_comfyui.base_url, api_key="comfy-key", timeout=FAST)
    client.generate(REQUEST)
    assert {r["headers"].get("authorization") for r in fake_comfyui.requests} == {"Bearer comfy-key"}


def test_a_slow_picture_that_keeps_reporting_is_not_a_timeout(fake_comfyui):
    """The read timeout is for silence, not for the whole picture: progress keeps it alive."""
    client = ComfyUIClient(base_url=fake_comfyui.base_url, timeout=(2.0, 1.5))
    fake_comfyui.progress_steps, fake_comfyui.step_delay = 6, 0.4  # 2.4 s in all
    seen: list[int] = []
    decode(client.generate(REQUEST, on_progress=seen.append))
    assert len(seen) == 6


def test_messages_about_another_clients_prompt_are_ignored(comfy, fake_comfyui):
    """A shared ComfyUI: only our prompt's progress counts, and only its end ends the wait."""
    original = fake_comfyui._execute

    def noisy(prompt_id, number, client_id, workflow, failure):
        stranger = {"prompt_id": "someone-else"}
        fake_comfyui._send(client_id, {"type": "progress", "data": {**stranger, "value": 9, "max": 10}})
        fake_comfyui._send(client_id, {"type": "executing", "data": {**stranger, "node": None}})
        fake_comfyui._send(client_id, {"type": "crystools.monitor", "data": {"cpu": 3}})
        fake_comfyui._send(client_id, {"type": "status", "data": {"status": {}}})
        original(prompt_id, number, client_id, workflow, failure)

    fake_comfyui._execute = noisy
    seen: list[int] = []
    decode(comfy.generate(REQUEST, on_progress=seen.append))
    assert seen == [25, 50, 75, 99]
