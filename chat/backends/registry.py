"""Providers by kind: ``REGISTRY[kind][provider_name]`` is a class that builds a client from a row.

A new provider is one class here and one entry in ``REGISTRY``. Each class says

- ``accepts``: the sampler fields its server takes (anything else is never sent);
- ``probe_path``: a cheap GET under the base URL for ``/healthz`` (None: nothing to probe);
- ``lists_models``: whether ``GET {base_url}/models`` returns the server's model names;
- ``default_base_url``: used when the row leaves the base URL blank (Novita, OpenAI);
- ``build(connection, settings)``: the client, with the decrypted key only in memory.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings as django_settings

from chat.backend_models import Connection
from chat.comfyui import ComfyUIClient
from chat.demo_images import DemoImages
from chat.demo_llm import DemoLLM
from chat.images import OpenAIImagesClient, SDWebUIClient
from chat.llm import OpenAIChatClient
from chat.speech import OpenAISpeechClient
from chat.transcription import TRANSCRIPTIONS_PATH, WHISPER_CPP_PATH, OpenAITranscriptionClient

# The official OpenAI API refuses fields it does not know (min_p, top_k, repetition_penalty).
OPENAI_SAMPLERS = frozenset(
    {"temperature", "top_p", "frequency_penalty", "presence_penalty", "max_tokens", "stop"}
)
# llama.cpp's llama-server, vLLM, KoboldCpp, text-generation-webui, Novita: the extra samplers too.
GENERIC_SAMPLERS = OPENAI_SAMPLERS | {"min_p", "top_k", "repetition_penalty"}

NOVITA_BASE_URL = "https://api.novita.ai/openai/v1"
NOVITA_MODEL = "sao10k/l31-70b-euryale-v2.2"
OPENAI_BASE_URL = "https://api.openai.com/v1"


class BackendUnavailable(Exception):
    """A back end cannot be used at all (for example, it is misconfigured)."""


class Provider:
    name: ClassVar[str]
    kind: ClassVar[str]
    accepts: ClassVar[frozenset[str]] = frozenset()
    probe_path: ClassVar[str | None] = None
    lists_models: ClassVar[bool] = False
    default_base_url: ClassVar[str] = ""
    demo: ClassVar[bool] = False
    # Whether the server may offer ``POST {root}/tokenize`` (llama-server, vLLM): probed once
    # per connection by ``chat.tokens``. Hosted APIs have none, so they are never asked.
    may_tokenize: ClassVar[bool] = False

    @classmethod
    def base_url(cls, connection: Connection) -> str:
        return (connection.base_url or cls.default_base_url).rstrip("/")

    @classmethod
    def required_base_url(cls, connection: Connection) -> str:
        """The base URL, for a provider that has no address of its own to fall back on."""
        url = cls.base_url(connection)
        if not url:
            raise BackendUnavailable(f"The connection {connection.name!r} has no base URL.")
        return url

    @classmethod
    def build(cls, connection: Connection) -> Any:
        raise NotImplementedError


# --- LLM ---------------------------------------------------------------------------


class OpenAICompatibleLLM(Provider):
    name = "openai-compatible"
    kind = Connection.Kind.LLM
    may_tokenize = True
    accepts = GENERIC_SAMPLERS
    probe_path = "/models"
    lists_models = True

    @classmethod
    def build(cls, connection: Connection) -> OpenAIChatClient:
        base_url = cls.required_base_url(connection)
        if not connection.default_model:
            raise BackendUnavailable(f"The connection {connection.name!r} names no model (LLM_MODEL).")
        return OpenAIChatClient(
            base_url=base_url,
            api_key=connection.api_key,
            model=connection.default_model,
            connect_timeout=connection.connect_timeout,
            read_timeout=connection.read_timeout,
        )


class NovitaLLM(OpenAICompatibleLLM):
    name = "novita"
    default_base_url = NOVITA_BASE_URL
    may_tokenize = False


class OpenAILLM(OpenAICompatibleLLM):
    name = "openai"
    accepts = OPENAI_SAMPLERS
    default_base_url = OPENAI_BASE_URL
    may_tokenize = False


class DemoLLMProvider(Provider):
    name = "demo"
    kind = Connection.Kind.LLM
    accepts = frozenset()  # the demo writes canned text: it takes no samplers
    demo = True

    @classmethod
    def build(cls, connection: Connection) -> DemoLLM:
        return DemoLLM(token_delay=django_settings.DEMO_LLM_TOKEN_DELAY)


# --- images ------------------------------------------------------------------------


def _image_timeout(connection: Connection) -> tuple[float, float]:
    return (connection.connect_timeout, connection.read_timeout)


class SDWebUIImages(Provider):
    name = "sd-webui"
    kind = Connection.Kind.IMAGE
    probe_path = "/sdapi/v1/sd-models"

    @classmethod
    def build(cls, connection: Connection) -> SDWebUIClient:
        return SDWebUIClient(base_url=cls.required_base_url(connection), timeout=_image_timeout(connection))


class OpenAIImages(Provider):
    name = "openai-images"
    kind = Connection.Kind.IMAGE
    probe_path = "/models"
    lists_models = True
    default_base_url = OPENAI_BASE_URL

    @classmethod
    def build(cls, connection: Connection) -> OpenAIImagesClient:
        return OpenAIImagesClient(
            base_url=cls.base_url(connection),
            api_key=connection.api_key,
            model=connection.default_model,
            timeout=_image_timeout(connection),
        )


class ComfyUIImages(Provider):
    name = "comfyui"
    kind = Connection.Kind.IMAGE
    probe_path = "/system_stats"

    @classmethod
    def build(cls, connection: Connection) -> ComfyUIClient:
        return ComfyUIClient(
            base_url=cls.required_base_url(connection),
            api_key=connection.api_key,
            workflow=connection.workflow or None,
            timeout=_image_timeout(connection),
        )


class DemoImagesProvider(Provider):
    name = "demo"
    kind = Connection.Kind.IMAGE
    demo = True

    @classmethod
    def build(cls, connection: Connection) -> DemoImages:
        return DemoImages()


# --- audio -------------------------------------------------------------------------


class OpenAIAudio(Provider):
    """OpenAI-compatible speech: ``/v1/audio/speech`` (OpenAI, Kokoro-FastAPI, openedai-speech,
    LocalAI). ``build`` returns the speech client (``synthesize``, ``voices``). The row's
    ``default_model`` is the speech model (TTS_MODEL), ``default_voice`` the voice of a
    companion without its own. Speech to text is a kind of its own (``OpenAITranscription``)."""

    name = "openai-audio"
    kind = Connection.Kind.AUDIO
    default_base_url = OPENAI_BASE_URL

    @classmethod
    def build(cls, connection: Connection) -> OpenAISpeechClient:
        return OpenAISpeechClient(
            base_url=cls.base_url(connection),
            api_key=connection.api_key,
            model=connection.default_model or django_settings.TTS_MODEL,
            default_voice=connection.default_voice or django_settings.TTS_VOICE,
            response_format=django_settings.TTS_FORMAT,
            timeout=(connection.connect_timeout, connection.read_timeout),
            max_bytes=django_settings.TTS_MAX_AUDIO_BYTES,
        )


DEFAULT_TRANSCRIPTION_MODEL = "whisper-1"


def _transcription_client(connection: Connection, base_url: str, path: str) -> OpenAITranscriptionClient:
    return OpenAITranscriptionClient(
        base_url=base_url,
        api_key=connection.api_key,
        model=connection.default_model or DEFAULT_TRANSCRIPTION_MODEL,
        path=path,
        connect_timeout=connection.connect_timeout,
        read_timeout=connection.read_timeout,
    )


class OpenAITranscription(Provider):
    """OpenAI-compatible ``/v1/audio/transcriptions`` (OpenAI itself when the base URL is blank;
    faster-whisper-server, LocalAI and others)."""

    name = "openai-audio"
    kind = Connection.Kind.TRANSCRIPTION
    default_base_url = OPENAI_BASE_URL

    @classmethod
    def build(cls, connection: Connection) -> OpenAITranscriptionClient:
        return _transcription_client(connection, cls.base_url(connection), TRANSCRIPTIONS_PATH)


class WhisperCppAudio(Provider):
    """whisper.cpp's ``whisper-server``: the same multipart form at ``{base}/inference``."""

    name = "whisper-cpp"
    kind = Connection.Kind.TRANSCRIPTION

    @classmethod
    def build(cls, connection: Connection) -> OpenAITranscriptionClient:
        return _transcription_client(connection, cls.required_base_url(connection), WHISPER_CPP_PATH)


REGISTRY: dict[str, dict[str, type[Provider]]] = {
    Connection.Kind.LLM: {p.name: p for p in (OpenAICompatibleLLM, NovitaLLM, OpenAILLM, DemoLLMProvider)},
    Connection.Kind.IMAGE: {
        p.name: p
        for p in (
            SDWebUIImages,
            OpenAIImages,
            ComfyUIImages,
            DemoImagesProvider,
        )
    },
    Connection.Kind.AUDIO: {p.name: p for p in (OpenAIAudio,)},
    Connection.Kind.TRANSCRIPTION: {p.name: p for p in (OpenAITranscription, WhisperCppAudio)},
}


def provider_for(connection: Connection) -> type[Provider]:
    try:
        return REGISTRY[connection.kind][connection.provider]
    except KeyError:
        raise BackendUnavailable(
            f"The connection {connection.name!r} names an unknown provider {connection.provider!r}."
        ) from None


def provider_choices(kind: str | None = None) -> list[tuple[str, str]]:
    """(name, label) pairs for a form's select, every kind when ``kind`` is None."""
    names = sorted({name for k, providers in REGISTRY.items() if kind in (None, k) for name in providers})
    return [(name, name) for name in names]
