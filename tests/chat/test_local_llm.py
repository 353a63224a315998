"""One streamed turn through the real ``chat/llm.py`` client against llama.cpp's llama-server.

Optional: ``make local-llm`` builds the server and installs a small model
into ``var/local-llm/``. Without them this test is skipped, never failed --
nothing in ``make test`` depends on the local LLM. Run it alone with
``pytest -m local_llm -s`` to see the tokens per second.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from chat.llm import OpenAIChatClient
from tests.fakes.site import free_port, stop_process

pytestmark = pytest.mark.local_llm

ROOT = Path(__file__).resolve().parents[2]
DIR = Path(os.environ.get("LOCAL_LLM_DIR", ROOT / "var" / "local-llm"))
SERVER = DIR / "bin" / "llama-server"
MODEL = DIR / "models" / "gemma-3-270m-q4_k_m.gguf"


@pytest.fixture
def llama_server(tmp_path):
    if not (SERVER.is_file() and os.access(SERVER, os.X_OK)):
        pytest.skip(f"no llama-server at {SERVER}: run `make local-llm` to build it (optional)")
    if not MODEL.is_file():
        pytest.skip(f"no model at {MODEL}: run `make local-llm` to install it (optional)")
    port = free_port()
    log = (tmp_path / "llama-server.log").open("w")
    process = subprocess.Popen(
        [str(SERVER), "-m", str(MODEL), "--host", "127.0.0.1", "--port", str(port), "--alias", "gemma-3-270m",
         "-c", "2048", "-t", "2"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # /health answers 503 while the model loads, 200 once it can serve
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"llama-server did not come up:\n{(tmp_path / 'llama-server.log').read_text()[-3000:]}"
                )
            time.sleep(0.25)
        yield f"{base}/v1"
    finally:
        stop_process(process)


def test_one_streamed_turn_through_the_real_client(llama_server):
    client = OpenAIChatClient(base_url=llama_server, model="gemma-3-270m", read_timeout=120)
    messages = [
        {"role": "system", "content": "You are Mira, a cheerful companion. Answer in one or two sentences."},
        {"role": "user", "content": "Hi Mira! What would you like to do at the beach today?"},
    ]
    started = time.perf_counter()
    stream = client.stream_chat(messages, max_tokens=48, temperature=0.7)
    pieces = list(stream)
    elapsed = time.perf_counter() - started
    result = stream.result

    assert len(pieces) > 1  # it really streamed, piece by piece
    assert result.text.strip() and result.text == stream.text
    assert result.finish_reason in ("stop", "length")
    assert result.completion_tokens > 0
    print(
        f"\nlocal LLM: {result.completion_tokens} tokens in {elapsed:.2f} s "
        f"({result.completion_tokens / elapsed:.1f} tokens/s, prompt {result.prompt_tokens} tokens, "
        f"finish {result.finish_reason}): {result.text.strip()!r}"
    )


@pytest.mark.django_db
def test_one_streamed_turn_through_a_connection_row(llama_server, user):
    """The same server as a connection a companion chose, with a preset: what the pipeline does."""
    from chat.backends import llm_for_companion, reset_backends
    from chat.connections import companion_backend_set, connection_save
    from chat.models import Connection, SamplerPreset
    from tests.companions.factories import make_companion

    reset_backends()
    connection = connection_save(
        connection=Connection(name="llama.cpp", kind="llm", provider="openai-compatible",
                              base_url=llama_server, default_model="gemma-3-270m", read_timeout=120)
    )  # fmt: skip
    preset = SamplerPreset.objects.create(name="Local", temperature=0.7, top_k=40, min_p=0.05, max_tokens=48)
    companion = make_companion(user)
    companion_backend_set(companion_id=companion.pk, llm_connection=connection, model="", preset=preset,
                          image_connection=None)  # fmt: skip
    llm = llm_for_companion(companion.pk)
    assert llm.connection == connection
    stream = llm.client.stream_chat(
        [{"role": "user", "content": "Say hello in five words."}],
        max_tokens=llm.max_tokens(200),
        temperature=llm.temperature(1.0),
    )
    pieces = list(stream)
    assert len(pieces) > 1 and stream.result.text.strip()
    assert stream.result.finish_reason in ("stop", "length")
    reset_backends()
