"""A fake picture service: Stable Diffusion WebUI / Forge and OpenAI images.

- ``POST /sdapi/v1/txt2img`` -> ``{"images": [<base64 PNG>], "parameters": {...}, "info": "<json>"}``
- ``POST /sdapi/v1/img2img`` (``init_images``, ``denoising_strength``) -> the same; no
  ``init_images`` is HTTP 422 like the real API
- ``GET /sdapi/v1/progress`` -> ``{"progress": 0..1, "eta_relative", "state": {...}}``: how far
  the picture being painted is (by the time it has slept of ``delay``), 0 when idle
- ``POST .../images/generations`` -> ``{"created": ..., "data": [{"b64_json": <base64 PNG>}]}``
- ``GET /sdapi/v1/options``, ``GET /sdapi/v1/sd-models``, ``GET .../models`` for health probes.

The PNGs are real images of the requested size (cached per size, so fast).
``base_url`` has no path: SD clients append ``/sdapi/v1/txt2img``, OpenAI
image clients are given ``base_url + "/v1"``.

Run by hand: ``python -m tests.fakes.sd_server --port 7860``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import threading
import time
from typing import Any, ClassVar

from PIL import Image

from tests.fakes.base import FakeHandler, FakeServer, serve_until_interrupted

__all__ = ["FakeSDServer", "png_bytes"]

MAX_SIDE = 4096
_png_cache: dict[tuple[int, int], bytes] = {}
_png_lock = threading.Lock()


def png_bytes(width: int, height: int) -> bytes:
    """A real PNG of ``width`` x ``height``: a diagonal colour gradient, cached by size."""
    size = (width, height)
    with _png_lock:
        cached = _png_cache.get(size)
    if cached is not None:
        return cached
    ramp = Image.linear_gradient("L")  # 256 x 256, black at the top to white at the bottom
    red = ramp.resize(size)
    green = ramp.rotate(90).resize(size)
    blue = Image.new("L", size, 160)
    buffer = io.BytesIO()
    Image.merge("RGB", (red, green, blue)).save(buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    with _png_lock:
        _png_cache[size] = data
    return data


def _side(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return min(max(number, 8), MAX_SIDE)


def _size(value: Any, default: tuple[int, int] = (1024, 1024)) -> tuple[int, int]:
    if not isinstance(value, str) or "x" not in value:
        return default
    width, _, height = value.lower().partition("x")
    return _side(width, default[0]), _side(height, default[1])


class _SDHandler(FakeHandler):
    def do_GET(self) -> None:
        self.read_json()
        fake: FakeSDServer = self.fake  # type: ignore[assignment]
        path = self.path.split("?", 1)[0].rstrip("/")
        if fake.is_down:
            self.send_error_json(503, "The server is down (fake).")
        elif path == "/sdapi/v1/progress":
            self.send_json(200, fake.progress_answer())
        elif path == "/sdapi/v1/options":
            self.send_json(200, {"sd_model_checkpoint": fake.model_title, "samples_format": "png"})
        elif path == "/sdapi/v1/sd-models":
            self.send_json(
                200,
                [
                    {
                        "title": fake.model_title,
                        "model_name": fake.model_title.split(".", 1)[0],
                        "filename": f"/models/{fake.model_title}",
                    }
                ],
            )
        elif path.endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "fake-image-model", "object": "model"}]})
        elif path in ("", "/health"):
            self.send_json(200, {"status": "ok"})
        else:
            self.send_error_json(404, f"Unknown path {self.path}")

    def do_POST(self) -> None:
        body = self.read_json()
        fake: FakeSDServer = self.fake  # type: ignore[assignment]
        path = self.path.split("?", 1)[0].rstrip("/")
        if fake.is_down:
            self.send_error_json(503, "The server is down (fake).")
            return
        if path in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img"):
            openai = False
        elif path.endswith("/images/generations"):
            openai = True
        else:
            self.send_error_json(404, f"Unknown path {self.path}")
            return
        if not isinstance(body, dict):
            self.send_error_json(422 if not openai else 400, "The request body is not a JSON object.")
            return
        if path == "/sdapi/v1/img2img" and not (
            isinstance(body.get("init_images"), list) and body["init_images"] and "denoising_strength" in body
        ):
            self.send_error_json(422, "img2img needs init_images and denoising_strength.")
            return
        failure = fake.take_failure()
        fake._painting(True)
        try:
            self.sleep(fake.delay)
        finally:
            fake._painting(False)
        kind = failure["kind"] if failure else None
        if kind == "hang":
            self.sleep(failure["seconds"])
            kind = None
        if kind == "status":
            self.send_error_json(
                failure["status"],
                f"The fake picture service failed with HTTP {failure['status']}.",
                body=failure["body"],
                retry_after=failure["retry_after"],
            )
            return
        if kind == "disconnect":
            self.drop_connection()
            return
        if kind == "not_json":
            self.send_bytes(200, b"<html><body>Bad gateway</body></html>", content_type="text/html")
            return
        if kind == "garbage":
            image = "!!!not base64!!!"
        elif kind == "not_png":
            image = base64.b64encode(b"this is not a picture, just some bytes " * 4).decode()
        elif kind == "empty":
            image = None
        elif openai:
            image = base64.b64encode(png_bytes(*_size(body.get("size")))).decode()
        else:
            size = _side(body.get("width"), 512), _side(body.get("height"), 512)
            image = base64.b64encode(png_bytes(*size)).decode()
        if openai:
            self.send_json(200, self._openai_payload(body, image))
        else:
            self.send_json(200, self._sd_payload(body, image))

    def _sd_payload(self, body: dict, image: str | None) -> dict:
        seed = body.get("seed", -1)
        if not isinstance(seed, int) or seed < 0:
            seed = random.randrange(2**32)
        info = {
            "prompt": body.get("prompt", ""),
            "negative_prompt": body.get("negative_prompt", ""),
            "seed": seed,
            "all_seeds": [seed],
            "width": _side(body.get("width"), 512),
            "height": _side(body.get("height"), 512),
            "steps": body.get("steps", 20),
            "cfg_scale": body.get("cfg_scale", 7.0),
            "sampler_name": body.get("sampler_name", "Euler a"),
            "sd_model_name": self.fake.model_title.split(".", 1)[0],  # type: ignore[attr-defined]
        }
        return {"images": [image] if image is not None else [], "parameters": body, "info": json.dumps(info)}

    def _openai_payload(self, body: dict, image: str | None) -> dict:
        data = [] if image is None else [{"b64_json": image, "revised_prompt": body.get("prompt", "")}]
        return {"created": int(time.time()), "data": data}


class FakeSDServer(FakeServer):
    """Stable Diffusion WebUI / Forge ``txt2img`` and OpenAI ``images/generations``.

    Settable attributes: ``delay`` (seconds before each answer), ``model_title``.

    ``fail_next(kind=...)``: ``"status"`` (default: HTTP ``status`` with an
    error body), ``"garbage"`` (an image that is not base64), ``"not_png"``
    (valid base64 of bytes that are no picture), ``"empty"`` (no images),
    ``"not_json"`` (HTTP 200 with HTML), ``"disconnect"`` (hang up without an
    answer), ``"hang"`` (sleep ``seconds``, then answer).

    Records: ``requests`` (see ``FakeServer``).
    """

    handler_class = _SDHandler
    failure_kinds: ClassVar[frozenset[str]] = frozenset(
        {"status", "garbage", "not_png", "empty", "not_json", "disconnect", "hang"}
    )

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.model_title = "fake-sd-model.safetensors"
        self._painting_since: float | None = None

    def _painting(self, started: bool) -> None:
        self._painting_since = time.monotonic() if started else None

    def progress_answer(self) -> dict:
        """``/sdapi/v1/progress`` as the WebUI answers it (without the preview image)."""
        since = self._painting_since
        fraction = 0.0
        if since is not None and self.delay > 0:
            fraction = min((time.monotonic() - since) / self.delay, 0.99)
        return {
            "progress": round(fraction, 3),
            "eta_relative": max(self.delay * (1 - fraction), 0.0),
            "state": {"job_count": int(since is not None), "sampling_step": 0, "sampling_steps": 20},
            "current_image": None,
            "textinfo": None,
        }

    @property
    def base_url(self) -> str:
        return self.origin

    @property
    def openai_base_url(self) -> str:
        return f"{self.origin}/v1"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake picture service until interrupted.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    server = FakeSDServer(args.host, args.port)
    server.delay = args.delay
    serve_until_interrupted(server, "Fake picture service")


if __name__ == "__main__":
    main()
