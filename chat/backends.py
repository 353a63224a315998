"""Which LLM and image back end to use, built once from settings.

The pipeline asks here and never looks at settings itself:
``get_llm_backend()`` / ``get_image_backend()`` return objects with the small
interfaces of ``chat.llm.OpenAIChatClient`` and ``chat.images.SDWebUIClient``.
The demo back ends are used only when nothing real is configured.
"""

from __future__ import annotations

import threading

from django.conf import settings

from chat.circuit import CircuitBreaker
from chat.demo_images import DemoImages
from chat.demo_llm import DemoLLM
from chat.images import ImageRequest, OpenAIImagesClient, SDWebUIClient
from chat.llm import OpenAIChatClient
from companionhub import backends_info

NOVITA_BASE_URL = "https://api.novita.ai/openai/v1"
NOVITA_MODEL = "sao10k/l31-70b-euryale-v2.2"

_local = threading.local()  # one client (one connection pool) per thread and configuration


class BackendUnavailable(Exception):
    """A back end cannot be used at all (for example, it is misconfigured)."""


def _llm_config() -> tuple:
    name = backends_info.llm_backend_name()
    if name == "openai-compatible":
        return (name, settings.LLM_BASE_URL, settings.LLM_API_KEY, settings.LLM_MODEL)
    if name == "novita":
        return (name, NOVITA_BASE_URL, settings.NOVITA_KEY, settings.LLM_MODEL or NOVITA_MODEL)
    return (name, "", "", "")


def _image_config() -> tuple:
    name = backends_info.image_backend_name()
    if name == "sd-webui":
        return (name, settings.SD_API_URL, "", "")
    if name == "openai-images":
        return (name, settings.IMAGE_API_URL, settings.IMAGE_API_KEY, settings.IMAGE_MODEL)
    return (name, "", "", "")


def _cached(slot: str, config: tuple, build):
    cached = getattr(_local, slot, None)
    if cached is None or cached[0] != config:
        cached = (config, build(config))
        setattr(_local, slot, cached)
    return cached[1]


def _build_llm(config: tuple):
    name, base_url, api_key, model = config
    if name == "demo":
        return DemoLLM(token_delay=settings.DEMO_LLM_TOKEN_DELAY)
    if not model:
        raise BackendUnavailable("LLM_MODEL is not set")
    return OpenAIChatClient(
        base_url=base_url,
        api_key=api_key,
        model=model,
        connect_timeout=settings.LLM_CONNECT_TIMEOUT,
        read_timeout=settings.LLM_READ_TIMEOUT,
    )


def _build_images(config: tuple):
    name, base_url, api_key, model = config
    timeout = (settings.LLM_CONNECT_TIMEOUT, settings.IMAGE_TIMEOUT)
    if name == "sd-webui":
        return SDWebUIClient(base_url=base_url, timeout=timeout)
    if name == "openai-images":
        return OpenAIImagesClient(base_url=base_url, api_key=api_key, model=model, timeout=timeout)
    return DemoImages()


def get_llm_backend():
    return _cached("llm", _llm_config(), _build_llm)


def get_image_backend():
    return _cached("images", _image_config(), _build_images)


def reset_backends() -> None:
    """Forget this thread's clients (tests change settings between cases)."""
    for slot in ("llm", "images"):
        if hasattr(_local, slot):
            delattr(_local, slot)


def image_request(prompt: str, negative_prompt: str) -> ImageRequest:
    return ImageRequest(
        prompt=prompt,
        negative_prompt=negative_prompt,
        width=settings.IMAGE_WIDTH,
        height=settings.IMAGE_HEIGHT,
        steps=settings.IMAGE_STEPS,
        cfg_scale=settings.IMAGE_CFG_SCALE,
        sampler=settings.IMAGE_SAMPLER,
    )


def _breaker(name: str) -> CircuitBreaker:
    return CircuitBreaker(
        name,
        threshold=settings.CIRCUIT_FAILURE_THRESHOLD,
        reset_seconds=settings.CIRCUIT_RESET_SECONDS,
        close_after=settings.CIRCUIT_CLOSE_AFTER,
    )


def llm_breaker() -> CircuitBreaker:
    return _breaker("llm")


def image_breaker() -> CircuitBreaker:
    return _breaker("images")
