"""Image back ends: Stable Diffusion WebUI / Forge and OpenAI-compatible images.

Both return the picture as base64 text; ``media.services.store_image``
decodes, validates and optimizes it, so nothing here trusts the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

__all__ = ["ImageBackendError", "ImageRequest", "OpenAIImagesClient", "SDWebUIClient"]


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
    seed: int = -1


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


def _first_string(items, key: str | None = None) -> str:
    if not isinstance(items, list) or not items:
        raise ImageBackendError("bad_response", "The picture service sent no picture.", retryable=True)
    first = items[0]
    if key is not None:
        first = first.get(key) if isinstance(first, dict) else None
    if not isinstance(first, str) or not first:
        raise ImageBackendError("bad_response", "The picture service sent no picture.", retryable=True)
    return first


class SDWebUIClient(_JSONClient):
    """AUTOMATIC1111 WebUI and Forge: ``POST {base}/sdapi/v1/txt2img``."""

    def __init__(self, *, base_url: str, timeout: tuple[float, float] = (5.0, 180.0)) -> None:
        super().__init__(timeout=timeout)
        self.url = base_url.rstrip("/") + "/sdapi/v1/txt2img"

    def generate(self, request: ImageRequest) -> str:
        payload = self._post(
            self.url,
            {
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
            },
        )
        return _first_string(payload.get("images"))


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

    def generate(self, request: ImageRequest) -> str:
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
