"""Image back ends: Stable Diffusion WebUI / Forge and OpenAI-compatible images.

Both return the picture as base64 text; ``media.services.store_image``
decodes, validates and optimizes it, so nothing here trusts the bytes.
ComfyUI lives in ``chat.comfyui`` with the same interface.

``generate(request, on_progress=None)``: a back end with a progress API
calls ``on_progress(percent)`` (0-100, rising) while it paints; the others
never call it.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

__all__ = ["ImageBackendError", "ImageRequest", "OpenAIImagesClient", "ProgressCallback", "SDWebUIClient"]

ProgressCallback = Callable[[int], None]
# How often the SD WebUI progress API is asked while a picture is painted.
SD_PROGRESS_INTERVAL = 1.0


class ImageBackendError(Exception):
    def __init__(self, code: str, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True, slots=True)
class ImageRequest:
    prompt: str
    negative_prompt: str = ""
    width: int = 832
    height: int = 1216
    steps: int = 28
    cfg_scale: float = 7.0
    sampler: str = "DPM++ 2M"
    seed: int = -1  # -1: the back end picks one; a companion's fixed seed keeps its look
    # A picture the result should resemble (the companion's header, as stored: JPEG bytes).
    reference_image: bytes | None = None
    # How far img2img may move from the reference (0: a copy, 1: ignore it).
    reference_strength: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.reference_strength <= 1.0:
            raise ValueError("reference_strength must be between 0 and 1")


def _error_for_status(response: requests.Response) -> ImageBackendError:
    status = response.status_code
    detail = response.text[:200]
    if status in (401, 403):
        return ImageBackendError("auth", f"HTTP {status}: {detail}", retryable=False, status=status)
    if status == 429 or status >= 500 or status == 408:
        return ImageBackendError("server", f"HTTP {status}: {detail}", retryable=True, status=status)
    return ImageBackendError("bad_request", f"HTTP {status}: {detail}", retryable=False, status=status)


class _JSONClient:
    def __init__(self, *, timeout: tuple[float, float], api_key: str = "") -> None:
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": "CompanionHub"})
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def _post(self, url: str, body: dict) -> dict:
        try:
            response = self.session.post(url, json=body, timeout=self.timeout)
        except requests.Timeout as exc:
            raise ImageBackendError(
                "timeout", "The picture service did not answer in time.", retryable=True
            ) from exc
        except requests.RequestException as exc:
            raise ImageBackendError(
                "connection", f"Could not reach the picture service ({type(exc).__name__}).", retryable=True
            ) from exc
        if response.status_code >= 400:
            raise _error_for_status(response)
        try:
            payload = response.json()
        except ValueError as exc:
            raise ImageBackendError(
                "bad_response", "The picture service sent no JSON.", retryable=True
            ) from exc
        if not isinstance(payload, dict):
            raise ImageBackendError(
                "bad_response", "The picture service sent no JSON object.", retryable=True
            )
        return payload


def _first_string(items: Any, key: str | None = None) -> str:
    if not isinstance(items, list) or not items:
        raise ImageBackendError("bad_response", "The picture service sent no picture.", retryable=True)
    first = items[0]
    if key is not None:
        first = first.get(key) if isinstance(first, dict) else None
    if not isinstance(first, str) or not first:
        raise ImageBackendError("bad_response", "The picture service sent no picture.", retryable=True)
    return first


class SDWebUIClient(_JSONClient):
    """AUTOMATIC1111 WebUI and Forge: ``POST {base}/sdapi/v1/txt2img``.

    With a reference picture it paints through ``/sdapi/v1/img2img`` instead
    (``init_images`` + ``denoising_strength``), so the face and style carry
    over. While painting, ``GET /sdapi/v1/progress`` is polled on a second
    connection for the percentage.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "",
        timeout: tuple[float, float] = (5.0, 180.0),
        progress_interval: float = SD_PROGRESS_INTERVAL,
    ) -> None:
        super().__init__(timeout=timeout, api_key=api_key)
        base = base_url.rstrip("/")
        self.url = base + "/sdapi/v1/txt2img"
        self.img2img_url = base + "/sdapi/v1/img2img"
        self.progress_url = base + "/sdapi/v1/progress?skip_current_image=true"
        self.progress_interval = progress_interval

    def generate(self, request: ImageRequest, on_progress: ProgressCallback | None = None) -> str:
        body = self._body(request)
        url = self.url
        if request.reference_image:
            url = self.img2img_url
            body["init_images"] = [base64.b64encode(request.reference_image).decode("ascii")]
            body["denoising_strength"] = request.reference_strength
        if on_progress is None:
            return _first_string(self._post(url, body).get("images"))
        stop = threading.Event()
        poller = threading.Thread(target=self._poll_progress, args=(stop, on_progress), daemon=True)
        poller.start()
        try:
            payload = self._post(url, body)
        finally:
            stop.set()
            poller.join(timeout=self.timeout[0] + 1)
        return _first_string(payload.get("images"))

    def _poll_progress(self, stop: threading.Event, on_progress: ProgressCallback) -> None:
        """Report the percentage until ``stop``; progress is a nicety, so any failure is ignored.

        Its own session: ``requests.Session`` is not safe to share with the
        thread that waits for the picture.
        """
        last = 0  # the WebUI says 0 while idle or queued: nothing to show yet
        with requests.Session() as session:
            session.headers.update(self.session.headers)
            while not stop.wait(self.progress_interval):
                try:
                    answer = session.get(self.progress_url, timeout=(self.timeout[0], 5.0)).json()
                    percent = int(float(answer.get("progress", 0)) * 100)
                except (requests.RequestException, ValueError, TypeError, AttributeError):
                    continue
                percent = min(max(percent, 0), 99)  # 100 is the picture itself, not a poll
                if percent > last:
                    last = percent
                    try:
                        on_progress(percent)
                    except Exception:  # a broken reporter must not end the picture
                        return

    def _body(self, request: ImageRequest) -> dict:
        return {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "width": request.width,
            "height": request.height,
            "steps": request.steps,
            "cfg_scale": request.cfg_scale,
            "sampler_name": request.sampler,
            "seed": request.seed,
            "batch_size": 1,
            "n_iter": 1,
            "send_images": True,
            "save_images": False,
        }


class OpenAIImagesClient(_JSONClient):
    """``POST {base}/images/generations`` asking for ``b64_json``."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "",
        model: str = "",
        timeout: tuple[float, float] = (5.0, 180.0),
    ) -> None:
        super().__init__(timeout=timeout, api_key=api_key)
        self.url = base_url.rstrip("/") + "/images/generations"
        self.model = model

    def generate(self, request: ImageRequest, on_progress: ProgressCallback | None = None) -> str:
        # The images API has no progress and no seed or reference parameters.
        body = {
            "prompt": request.prompt,
            "n": 1,
            "size": f"{request.width}x{request.height}",
            "response_format": "b64_json",
        }
        if self.model:
            body["model"] = self.model
        payload = self._post(self.url, body)
        return _first_string(payload.get("data"), "b64_json")
