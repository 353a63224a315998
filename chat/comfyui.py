"""ComfyUI as an image back end: a workflow in API format with placeholders.

One picture is five calls to ComfyUI's own API:

1. open ``/ws?clientId=<ours>`` first, so no progress message is missed;
2. with a reference picture, ``POST /upload/image`` (multipart) and put the
   name it answers into ``{{reference_image}}``;
3. ``POST /prompt`` with the filled-in workflow and our client id;
4. read the socket: ``progress`` (value/max) is reported as a percentage,
   ``executing`` with ``node: null`` (or ``execution_success``) means done,
   ``execution_error`` / ``execution_interrupted`` mean it failed;
5. ``GET /history/<prompt_id>`` names the output files, and
   ``GET /view?filename=…&subfolder=…&type=output`` fetches the first one.

The bytes come back as base64 like every other back end, and
``media.services.store_image`` still validates them; an answer that is not
an image (an HTML error page with 200) is refused here already.

Placeholders are whole strings (``"{{seed}}"``), replaced by a value of the
right type (numbers stay numbers, as ComfyUI's inputs require), or parts of
a longer string (``"photo, {{prompt}}"``), replaced as text. Any other
``{{name}}`` is a mistake in the workflow and is refused before anything is
sent.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from chat.images import ImageBackendError, ImageRequest, ProgressCallback, _error_for_status

__all__ = ["PLACEHOLDERS", "ComfyUIClient", "WorkflowError", "default_workflow", "validate_workflow"]

DEFAULT_WORKFLOW_PATH = Path(__file__).with_name("workflows") / "comfyui_txt2img.json"
# Used instead of the default when a picture has a reference and the connection has no workflow.
DEFAULT_REFERENCE_WORKFLOW_PATH = Path(__file__).with_name("workflows") / "comfyui_img2img.json"
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# name -> the type its value has in the workflow (what ComfyUI's node inputs expect)
PLACEHOLDERS: dict[str, type] = {
    "prompt": str,
    "negative_prompt": str,
    "seed": int,
    "width": int,
    "height": int,
    "steps": int,
    "cfg_scale": float,
    "reference_image": str,
}
MAX_SEED = 2**32 - 1  # what SD samplers accept everywhere; ComfyUI allows more, we need no more
# ComfyUI's output folders: "output" is what SaveImage writes; "temp" is a preview.
OUTPUT_TYPES = ("output", "temp")


class WorkflowError(ImageBackendError):
    """The stored workflow cannot be used: a mistake to fix, never worth retrying."""

    def __init__(self, message: str) -> None:
        super().__init__("bad_workflow", message, retryable=False)


@cache
def _workflow_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def default_workflow(*, reference: bool = False) -> dict:
    """The shipped text-to-image workflow, or with ``reference`` the image-to-image one that
    paints from ``{{reference_image}}`` (a fresh copy each call)."""
    return json.loads(_workflow_text(DEFAULT_REFERENCE_WORKFLOW_PATH if reference else DEFAULT_WORKFLOW_PATH))


def _walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_strings(item)


def validate_workflow(workflow: Any) -> set[str]:
    """Check the shape of an API-format workflow; return the placeholders it uses.

    Raises ``WorkflowError`` naming the first problem: not an object of
    nodes, a node without ``class_type`` / ``inputs``, or an unknown
    placeholder. Forms can call this to refuse a workflow before it is saved.
    """
    if not isinstance(workflow, dict) or not workflow:
        raise WorkflowError("The workflow must be a JSON object of nodes in ComfyUI's API format.")
    for node_id, node in workflow.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise WorkflowError(f"Node {node_id!r} has no 'class_type' (save the workflow in API format).")
        if not isinstance(node.get("inputs"), dict):
            raise WorkflowError(f"Node {node_id!r} has no 'inputs' object.")
    used: set[str] = set()
    for text in _walk_strings(workflow):
        for name in PLACEHOLDER.findall(text):
            if name not in PLACEHOLDERS:
                known = ", ".join("{{" + n + "}}" for n in PLACEHOLDERS)
                raise WorkflowError(f"Unknown placeholder {{{{{name}}}}} in the workflow. Known: {known}.")
            used.add(name)
    return used


def fill_workflow(workflow: dict, values: dict[str, Any]) -> dict:
    """A copy of ``workflow`` with every placeholder replaced (validated first)."""
    used = validate_workflow(workflow)
    missing = sorted(name for name in used if values.get(name) is None)
    if missing:
        if "reference_image" in missing:
            raise WorkflowError(
                "The workflow needs a reference picture ({{reference_image}}): "
                "turn on 'use header picture as reference' and give the companion a header picture."
            )
        raise WorkflowError(f"No value for {', '.join(missing)}.")

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            whole = PLACEHOLDER.fullmatch(value.strip())
            if whole:  # the whole string: the value with its own type
                name = whole.group(1)
                return PLACEHOLDERS[name](values[name])
            return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), value)
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value

    return fill(copy.deepcopy(workflow))


def _websocket_url(base_url: str, client_id: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", f"clientId={client_id}", ""))


class ComfyUIClient:
    """A ComfyUI server (``base_url`` without ``/prompt``), optionally behind a proxy that wants a key."""

    name = "comfyui"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "",
        workflow: dict | None = None,
        timeout: tuple[float, float] = (5.0, 180.0),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        # No workflow of the connection's own: ours, text-to-image, or image-to-image for a reference.
        self.uses_default = not workflow
        self.workflow = workflow or default_workflow()
        validate_workflow(self.workflow)  # a broken stored workflow fails when the client is made
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "CompanionHub"})
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    # --- the interface of every image back end ---

    def generate(self, request: ImageRequest, on_progress: ProgressCallback | None = None) -> str:
        client_id = uuid.uuid4().hex
        values: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            # ComfyUI's samplers take no -1: "any seed" is ours to pick.
            "seed": request.seed if request.seed >= 0 else random.randint(0, MAX_SEED),  # noqa: S311
            "width": request.width,
            "height": request.height,
            "steps": request.steps,
            "cfg_scale": request.cfg_scale,
            "reference_image": None,
        }
        workflow = self.workflow
        if self.uses_default and request.reference_image:
            workflow = default_workflow(reference=True)
        # A workflow of the connection's own without {{reference_image}} paints from text only.
        if request.reference_image and "reference_image" in validate_workflow(workflow):
            values["reference_image"] = self._upload(request.reference_image)
        workflow = fill_workflow(workflow, values)
        with self._open_socket(client_id) as socket:
            prompt_id = self._queue(workflow, client_id)
            self._wait(socket, prompt_id, on_progress)
        filename, subfolder, folder_type = self._output(prompt_id)
        return base64.b64encode(self._view(filename, subfolder, folder_type)).decode("ascii")

    # --- the steps ---

    def _open_socket(self, client_id: str) -> ClientConnection:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        try:
            return connect(
                _websocket_url(self.base_url, client_id),
                additional_headers=headers,
                open_timeout=self.timeout[0],
                close_timeout=1.0,
                max_size=2**22,  # preview frames are binary and can be large; we skip them
                user_agent_header="CompanionHub",
            )
        except InvalidHandshake as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):
                raise ImageBackendError("auth", f"HTTP {status} on the progress socket", retryable=False,
                                        status=status) from exc  # fmt: skip
            raise ImageBackendError(
                "connection", f"ComfyUI refused the progress socket ({exc}).", retryable=True, status=status
            ) from exc
        except (OSError, TimeoutError, InvalidURI) as exc:
            raise ImageBackendError(
                "connection", f"Could not reach ComfyUI ({type(exc).__name__}).", retryable=True
            ) from exc

    def _upload(self, data: bytes) -> str:
        """Put the reference picture into ComfyUI's input folder; its name for ``LoadImage``."""
        # Our own name, never one from input; a fresh one each time, so no picture is overwritten.
        name = f"companionhub-{uuid.uuid4().hex}.jpg"
        answer = self._call(
            "post",
            "/upload/image",
            files={"image": (name, data, "image/jpeg")},
            data={"type": "input", "overwrite": "true"},
        )
        stored = self._json_object(answer)
        if not isinstance(stored.get("name"), str) or not stored["name"]:
            raise ImageBackendError(
                "bad_response", "ComfyUI did not name the uploaded picture.", retryable=True
            )
        subfolder = stored.get("subfolder") or ""
        return f"{subfolder}/{stored['name']}" if isinstance(subfolder, str) and subfolder else stored["name"]

    def _queue(self, workflow: dict, client_id: str) -> str:
        answer = self._call("post", "/prompt", json={"prompt": workflow, "client_id": client_id})
        payload = self._json_object(answer)
        prompt_id = payload.get("prompt_id")
        if not isinstance(prompt_id, str) or not prompt_id:
            raise ImageBackendError("bad_response", "ComfyUI queued nothing (no prompt_id).", retryable=True)
        return prompt_id

    def _wait(self, socket: ClientConnection, prompt_id: str, on_progress: ProgressCallback | None) -> None:
        """Read the socket until our prompt is done; report progress on the way."""
        last = -1
        while True:
            try:
                message = socket.recv(timeout=self.timeout[1])
            except TimeoutError as exc:
                raise ImageBackendError("timeout", "ComfyUI did not finish in time.", retryable=True) from exc
            except ConnectionClosed as exc:
                raise ImageBackendError(
                    "connection", "ComfyUI closed the progress socket before the picture was done.",
                    retryable=True,
                ) from exc  # fmt: skip
            if not isinstance(message, str):
                continue  # binary frames are live previews
            try:
                event = json.loads(message)
                kind, data = event["type"], event.get("data") or {}
            except (ValueError, KeyError, TypeError):
                continue
            if not isinstance(data, dict) or data.get("prompt_id", prompt_id) != prompt_id:
                continue  # someone else's prompt on a shared server
            if kind == "progress" and on_progress is not None:
                percent = _percent(data)
                if percent is not None and percent > last:
                    last = percent
                    try:
                        on_progress(percent)
                    except Exception:  # a broken reporter must not end the picture
                        on_progress = None
            elif (kind == "executing" and data.get("node") is None and "prompt_id" in data) or (
                kind == "execution_success"
            ):
                return
            elif kind == "execution_error":
                detail = str(data.get("exception_message") or data.get("exception_type") or "unknown error")
                node = data.get("node_type") or data.get("node_id") or "?"
                raise ImageBackendError(
                    "execution_error",
                    f"ComfyUI failed in node {node}: {detail.strip()[:200]}",
                    retryable=False,
                )
            elif kind == "execution_interrupted":
                raise ImageBackendError("interrupted", "ComfyUI stopped the picture.", retryable=True)

    def _output(self, prompt_id: str) -> tuple[str, str, str]:
        """(filename, subfolder, type) of the first picture the prompt wrote."""
        history = self._json_object(self._call("get", f"/history/{prompt_id}"))
        entry = history.get(prompt_id)
        outputs = entry.get("outputs") if isinstance(entry, dict) else None
        found: list[tuple[str, str, str]] = []
        for node_output in (outputs or {}).values() if isinstance(outputs, dict) else ():
            images = node_output.get("images") if isinstance(node_output, dict) else None
            for image in images if isinstance(images, list) else ():
                if not isinstance(image, dict) or not isinstance(image.get("filename"), str):
                    continue
                folder_type = image.get("type") or "output"
                if folder_type in OUTPUT_TYPES:
                    found.append((image["filename"], str(image.get("subfolder") or ""), folder_type))
        if not found:
            raise ImageBackendError("bad_response", "ComfyUI finished without a picture.", retryable=True)
        found.sort(key=lambda item: OUTPUT_TYPES.index(item[2]))  # a saved picture before a preview
        return found[0]

    def _view(self, filename: str, subfolder: str, folder_type: str) -> bytes:
        response = self._call(
            "get", "/view", params={"filename": filename, "subfolder": subfolder, "type": folder_type}
        )
        content_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if not content_type.startswith("image/") or not response.content:
            # A proxy's HTML error page can come with 200: it is never a picture.
            raise ImageBackendError(
                "bad_response",
                f"ComfyUI sent {content_type or 'nothing'} instead of a picture.",
                retryable=True,
            )
        return response.content

    # --- HTTP ---

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise ImageBackendError("timeout", "ComfyUI did not answer in time.", retryable=True) from exc
        except requests.RequestException as exc:
            raise ImageBackendError(
                "connection", f"Could not reach ComfyUI ({type(exc).__name__}).", retryable=True
            ) from exc
        if response.status_code >= 400:
            raise _error_for_status(response)
        return response

    @staticmethod
    def _json_object(response: requests.Response) -> dict:
        try:
            payload = response.json()
        except ValueError as exc:
            raise ImageBackendError("bad_response", "ComfyUI sent no JSON.", retryable=True) from exc
        if not isinstance(payload, dict):
            raise ImageBackendError("bad_response", "ComfyUI sent no JSON object.", retryable=True)
        return payload


def _percent(data: dict) -> int | None:
    value, maximum = data.get("value"), data.get("max")
    if not isinstance(value, (int, float)) or not isinstance(maximum, (int, float)) or maximum <= 0:
        return None
    # 100 is the stored picture, not the sampler's last step.
    return min(max(int(value * 100 / maximum), 0), 99)
