"""Back ends as data: connection rows, the environment's default, per-companion choice, keys kept secret."""

from __future__ import annotations

import logging

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from accounts.models import UsageTransaction
from chat import backends
from chat.backends import llm_for_companion
from chat.backends.env import connection_sync_from_env
from chat.connections import (
    ConnectionProblem,
    companion_backend_set,
    connection_fetch_models,
    connection_save,
    probe_connections,
)
from chat.llm import DEFAULT_STOP
from chat.models import CompanionBackend, Connection, SamplerPreset
from companionhub import backends_info, health, secretbox
from tests.fakes.llm_server import FakeLLMServer

SECRET = "sk-live-DO-NOT-LEAK-4f1c9a"


@pytest.fixture(autouse=True)
def _fresh_backends():
    backends.reset_backends()
    health.forget_cached_health()
    yield
    backends.reset_backends()
    health.forget_cached_health()


def make_connection(base_url: str, *, name="Other server", provider="openai-compatible", model="big-model",
                    key=SECRET, **fields) -> Connection:  # fmt: skip
    return connection_save(
        connection=Connection(
            name=name, kind="llm", provider=provider, base_url=base_url, default_model=model, **fields
        ),
        api_key=key,
    )


# --- the key at rest ------------------------------------------------------------------


def test_the_key_is_stored_encrypted_and_read_back(db):
    row = make_connection("http://127.0.0.1:9/v1")
    stored = Connection.objects.values_list("api_key_sealed", flat=True).get(pk=row.pk)
    assert SECRET not in stored and stored
    assert Connection.objects.get(pk=row.pk).api_key == SECRET
    assert SECRET not in str(row) and SECRET not in repr(row)


def test_rotating_the_secret_keeps_stored_keys_readable(db, settings):
    sealed = secretbox.seal(SECRET)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = [old]
    assert secretbox.unseal(sealed) == SECRET
    assert secretbox.unseal(secretbox.reseal(sealed)) == SECRET
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(secretbox.SecretUnreadable) as caught:
        secretbox.unseal(sealed)
    assert SECRET not in str(caught.value)


def test_a_blank_key_keeps_the_stored_one_and_clear_removes_it(db):
    row = make_connection("http://127.0.0.1:9/v1")
    connection_save(connection=row, api_key="")
    assert Connection.objects.get(pk=row.pk).api_key == SECRET
    connection_save(connection=row, clear_api_key=True)
    assert Connection.objects.get(pk=row.pk).api_key == ""


# --- the environment ------------------------------------------------------------------


def test_the_environment_creates_one_default_row_and_a_second_sync_writes_nothing(db, settings):
    settings.LLM_BASE_URL, settings.LLM_API_KEY, settings.LLM_MODEL = "http://127.0.0.1:9/v1", SECRET, "m"
    settings.SD_API_URL = "http://127.0.0.1:9"
    connection_sync_from_env()
    rows = {row.kind: row for row in Connection.objects.filter(from_env=True)}
    assert set(rows) == {"llm", "image"}
    assert rows["llm"].is_default and rows["llm"].api_key == SECRET and rows["llm"].default_model == "m"
    assert rows["image"].provider == "sd-webui"
    stamp = rows["llm"].updated_at
    connection_sync_from_env()
    assert Connection.objects.count() == 2
    assert Connection.objects.get(pk=rows["llm"].pk).updated_at == stamp  # idempotent: nothing written
    settings.LLM_MODEL = "m2"
    connection_sync_from_env()
    assert Connection.objects.get(pk=rows["llm"].pk).default_model == "m2"
    settings.LLM_BASE_URL = ""
    connection_sync_from_env()
    assert not Connection.objects.get(pk=rows["llm"].pk).enabled  # variables gone: disabled, not deleted


def test_novita_alone_gets_its_preset_address(db, settings):
    settings.NOVITA_KEY = SECRET
    choice = llm_for_companion(None)
    assert choice.connection.provider == "novita"
    assert choice.client.url == "https://api.novita.ai/openai/v1/chat/completions"


def test_nothing_configured_is_the_labelled_demo(db):
    assert llm_for_companion(None).connection is None
    assert backends_info.demo_backends() == ["LLM", "images"]


def test_the_banner_follows_a_connection_row(db, fake_llm):
    make_connection(fake_llm.base_url, is_default=True)
    assert backends_info.demo_backends() == ["images"]


def test_sync_connections_command(db, settings, capsys):
    from django.core.management import call_command

    settings.LLM_BASE_URL, settings.LLM_API_KEY, settings.LLM_MODEL = "http://127.0.0.1:9/v1", SECRET, "m"
    call_command("sync_connections")
    out = capsys.readouterr().out
    assert "Environment LLM" in out and SECRET not in out
    assert Connection.objects.filter(from_env=True, kind="llm").count() == 1


# --- per companion: exactly the chosen fields go out ---------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_companion_switched_to_another_connection_model_and_preset_sends_exactly_those(
    worker, use_fake_llm, connect, companion, user
):
    with FakeLLMServer() as other:

        @sync_to_async
        def choose():
            connection = make_connection(other.base_url, model="default-of-other")
            preset = SamplerPreset.objects.create(
                name="Creative", temperature=1.25, top_p=0.9, min_p=0.05, top_k=40,
                repetition_penalty=1.1, frequency_penalty=0.2, presence_penalty=0.3,
                max_tokens=321, stop=["\nUser:"],
            )  # fmt: skip
            companion_backend_set(
                companion_id=companion.pk, llm_connection=connection, model="chosen-model",
                preset=preset, image_connection=None,
            )  # fmt: skip

        await choose()
        client = await connect(companion.pk, user=user)
        await client.send({"type": "message.send", "content": "Hi", "client_id": "c"})
        await client.receive_until("done")
        streamed = [r for r in other.requests if (r["json"] or {}).get("stream")]
        assert use_fake_llm.requests == []  # the environment's server was not asked at all
        assert len(streamed) == 1
        body = streamed[0]["json"]
        assert body["model"] == "chosen-model"
        sent = {k: body[k] for k in body if k not in ("model", "messages", "stream", "stream_options")}
        assert sent == {
            "temperature": 1.25, "top_p": 0.9, "min_p": 0.05, "top_k": 40, "repetition_penalty": 1.1,
            "frequency_penalty": 0.2, "presence_penalty": 0.3, "max_tokens": 321, "stop": ["\nUser:"],
        }  # fmt: skip
        assert streamed[0]["headers"]["authorization"] == f"Bearer {SECRET}"
        # The analysis uses the same connection and model, without the preset.
        analysis = [
            r["json"]
            for r in other.requests
            if r["json"] and "messages" in r["json"] and not r["json"].get("stream")
        ]
        assert analysis and all(a["model"] == "chosen-model" and "top_k" not in a for a in analysis)
        usage = await sync_to_async(UsageTransaction.objects.get)(user=user)
        assert usage.served_by == "Other server / chosen-model"


def test_a_provider_never_receives_a_field_it_does_not_accept(db, companion, fake_llm):
    connection = make_connection(fake_llm.base_url, provider="openai")
    preset = SamplerPreset.objects.create(name="All", temperature=0.7, top_p=0.8, min_p=0.1, top_k=20,
                                          repetition_penalty=1.2, presence_penalty=0.1)  # fmt: skip
    companion_backend_set(companion_id=companion.pk, llm_connection=connection, model="", preset=preset,
                          image_connection=None)  # fmt: skip
    choice = llm_for_companion(companion.pk)
    stream = choice.client.stream_chat([{"role": "user", "content": "hi"}], max_tokens=50, temperature=0.7)
    list(stream)
    body = fake_llm.requests[-1]["json"]
    assert body["model"] == "big-model"  # no model chosen: the connection's default
    assert body["top_p"] == 0.8 and body["presence_penalty"] == 0.1
    assert not {"min_p", "top_k", "repetition_penalty"} & set(body)


def test_a_disabled_connection_falls_back_to_the_default(db, companion, settings):
    settings.LLM_BASE_URL, settings.LLM_MODEL = "http://127.0.0.1:9/v1", "env-model"
    connection = make_connection("http://127.0.0.1:8/v1", enabled=False)
    companion_backend_set(companion_id=companion.pk, llm_connection=connection, model="x", preset=None,
                          image_connection=None)  # fmt: skip
    choice = llm_for_companion(companion.pk)
    assert choice.connection.from_env and choice.model == "env-model"


def test_breakers_are_per_connection(db, companion, fake_llm):
    first = make_connection(fake_llm.base_url, name="A")
    second = make_connection(fake_llm.base_url, name="B")
    companion_backend_set(companion_id=companion.pk, llm_connection=first, model="", preset=None,
                          image_connection=None)  # fmt: skip
    breaker = llm_for_companion(companion.pk).breaker
    assert breaker.name == f"llm:{first.pk}"
    try:
        for _ in range(breaker.threshold):
            breaker.record_failure()
        assert backends.breaker_for(second, "llm").status().state == "closed"
    finally:
        breaker.reset()


def test_clients_are_cached_until_the_row_changes(db, fake_llm):
    row = make_connection(fake_llm.base_url, is_default=True)
    first = backends._client(row, "llm")
    assert backends._client(Connection.objects.get(pk=row.pk), "llm") is first
    row.default_model = "another"
    connection_save(connection=row)
    assert backends._client(Connection.objects.get(pk=row.pk), "llm") is not first


# --- models list and probes -----------------------------------------------------------


def test_fetch_models_keeps_the_servers_names(db, fake_llm):
    fake_llm.models = ["b-model", "a-model"]
    row = make_connection(fake_llm.base_url)
    assert connection_fetch_models(connection=row) == ["a-model", "b-model"]
    assert Connection.objects.get(pk=row.pk).models_list == ["a-model", "b-model"]
    assert fake_llm.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"


def test_a_failed_fetch_names_neither_the_key_nor_the_address(db, fake_llm):
    fake_llm.down()
    row = make_connection(fake_llm.base_url + "?key=" + SECRET)
    with pytest.raises(ConnectionProblem) as caught:
        connection_fetch_models(connection=row)
    assert str(caught.value) == "HTTP 503"
    row = make_connection("http://127.0.0.1:9/v1?key=" + SECRET, name="Dead")
    with pytest.raises(ConnectionProblem) as caught:
        connection_fetch_models(connection=row)
    assert SECRET not in str(caught.value) and "127.0.0.1" not in str(caught.value)


def test_probes_are_cached_and_recorded_on_the_row(db, fake_llm, settings):
    settings.HEALTHZ_PROBE_SECONDS = 60
    row = make_connection(fake_llm.base_url)
    assert probe_connections()["Other server"]["ok"] is True
    probe_connections()
    assert [r["path"] for r in fake_llm.requests] == ["/v1/models"]  # once, however often asked
    assert Connection.objects.get(pk=row.pk).last_probe_ok is True


# --- the key never shows --------------------------------------------------------------


def test_the_key_appears_in_no_page_report_or_log(db, client, fake_llm, caplog, settings, companion, user):
    settings.HEALTHZ_PROBE_SECONDS = 0
    root = type(user).objects.create_superuser("root", "root@example.com", "pw-root-123456")
    client.force_login(root)
    caplog.set_level(logging.DEBUG)
    fake_llm.down()  # errors too: a failing probe and a failing fetch
    row = make_connection(fake_llm.base_url)
    pages = [
        reverse("admin:chat_connection_changelist"),
        reverse("admin:chat_connection_change", args=[row.pk]),
        reverse("admin:chat_connection_add"),
        reverse("admin:chat_connection_history", args=[row.pk]),
        reverse("healthz"),
    ]
    bodies = [client.get(page).content.decode() for page in pages]
    response = client.post(
        reverse("admin:chat_connection_changelist"),
        {"action": "fetch_models", "_selected_action": [str(row.pk)]},
        follow=True,
    )
    bodies.append(response.content.decode())
    # Saving through the admin form with a new key: the page after it shows no key either.
    response = client.post(
        reverse("admin:chat_connection_change", args=[row.pk]),
        {"name": row.name, "kind": "llm", "provider": "openai-compatible", "base_url": "not a url",
         "default_model": "m", "context_length": 8192, "connect_timeout": 5, "read_timeout": 60,
         "workflow": "{}", "new_api_key": SECRET + "-new"},
    )  # fmt: skip
    assert response.status_code == 200  # the bad address keeps the form on the page
    bodies.append(response.content.decode())
    bodies.append(client.get(reverse("chat:model", args=[companion.pk])).content.decode())
    assert "failing" in bodies[0] or "not probed" in bodies[0]
    for body in bodies:
        assert SECRET not in body
    assert SECRET not in caplog.text


def test_the_admin_form_stores_a_new_key_without_showing_it(db, client, fake_llm):
    from accounts.models import User

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root-123456"))
    response = client.post(
        reverse("admin:chat_connection_add"),
        {"name": "Local", "kind": "llm", "provider": "openai-compatible", "base_url": fake_llm.base_url,
         "default_model": "m", "context_length": 8192, "connect_timeout": 5, "read_timeout": 60,
         "workflow": "{}", "enabled": "on", "new_api_key": SECRET},
    )  # fmt: skip
    assert response.status_code == 302
    row = Connection.objects.get(name="Local")
    assert row.api_key == SECRET
    page = client.get(reverse("admin:chat_connection_change", args=[row.pk])).content.decode()
    assert "stored (encrypted)" in page and SECRET not in page


def test_a_stored_key_is_not_sent_to_a_new_address_unasked(db, client, fake_llm):
    from accounts.models import User

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root-123456"))
    row = make_connection(fake_llm.base_url)
    form = {"name": row.name, "kind": "llm", "provider": row.provider, "base_url": "http://127.0.0.1:9/v1",
            "default_model": "m", "context_length": 8192, "connect_timeout": 5, "read_timeout": 60,
            "workflow": "{}", "enabled": "on"}  # fmt: skip
    url = reverse("admin:chat_connection_change", args=[row.pk])
    refused = client.post(url, form)
    assert refused.status_code == 200 and "enter the API key for the new server" in refused.content.decode()
    row.refresh_from_db()
    assert row.base_url == fake_llm.base_url and row.api_key == SECRET
    assert client.post(url, {**form, "new_api_key": "key-for-the-new-server"}).status_code == 302
    row.refresh_from_db()
    assert (row.base_url, row.api_key) == ("http://127.0.0.1:9/v1", "key-for-the-new-server")


def test_a_provider_of_another_kind_is_refused(db, client):
    from accounts.models import User

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root-123456"))
    response = client.post(
        reverse("admin:chat_connection_add"),
        {"name": "X", "kind": "llm", "provider": "sd-webui", "base_url": "http://127.0.0.1:9",
         "context_length": 8192, "connect_timeout": 5, "read_timeout": 60, "workflow": "{}"},
    )  # fmt: skip
    assert response.status_code == 200 and not Connection.objects.exists()
    assert CompanionBackend.objects.count() == 0


@pytest.mark.django_db(transaction=True)
async def test_a_server_echoing_the_key_in_an_error_does_not_put_it_in_the_error_frame(
    worker, fake_llm, connect, companion, user, caplog
):
    @sync_to_async
    def choose():
        connection = make_connection(fake_llm.base_url, is_default=True)
        companion_backend_set(companion_id=companion.pk, llm_connection=connection, model="", preset=None,
                              image_connection=None)  # fmt: skip

    await choose()
    fake_llm.fail_next(status=400, times=5, body={"error": {"message": f"bad key Bearer {SECRET}"}})
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi", "client_id": "c"})
    error = await client.receive_until("error")
    assert error["code"] == "bad_request"
    assert SECRET not in str(client.events)
    run = await sync_to_async(lambda: __import__("chat.models").models.PipelineRun.objects.get())()
    assert SECRET not in run.error_text
    assert SECRET not in caplog.text


def test_the_admin_lists_connections_with_health_and_breaker(db, client, fake_llm, settings):
    from accounts.models import User

    settings.HEALTHZ_PROBE_SECONDS = 0
    row = make_connection(fake_llm.base_url)
    fake_llm.down()
    probe_connections()
    breaker = backends.breaker_for(row, "llm")
    for _ in range(breaker.threshold):
        breaker.record_failure()
    try:
        client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root-123456"))
        page = client.get(reverse("admin:chat_connection_changelist")).content.decode()
        assert "failing: HTTP 503" in page and "open (retry in" in page
    finally:
        breaker.reset()


def test_a_sillytavern_preset_imports_in_the_admin(db, client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.models import User

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root-123456"))
    upload = SimpleUploadedFile("Euryale.json", b'{"temperature": 1.1, "openai_max_tokens": 300}')
    response = client.post(reverse("admin:chat_samplerpreset_import"), {"name": "Euryale", "file": upload})
    assert response.status_code == 302
    preset = SamplerPreset.objects.get(name="Euryale")
    assert preset.owner is None and preset.max_tokens == 300
    response = client.post(reverse("admin:chat_samplerpreset_import"), {"name": "Bad", "text": "[]"})
    assert "must be a JSON object" in response.content.decode()


def test_every_kind_has_its_providers_and_a_comfyui_connection_builds_its_client(db):
    from chat.backends import REGISTRY
    from chat.backends.registry import provider_for
    from chat.comfyui import ComfyUIClient

    assert set(REGISTRY["llm"]) >= {"openai-compatible", "novita", "demo"}
    assert set(REGISTRY["image"]) >= {"sd-webui", "openai-images", "comfyui", "demo"}
    row = Connection(name="Comfy", kind="image", provider="comfyui", base_url="http://127.0.0.1:8188")
    assert isinstance(provider_for(row).build(row), ComfyUIClient)


def test_a_broken_comfyui_workflow_is_refused_in_the_admin(db, client):
    from accounts.models import User

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root-123456"))
    response = client.post(
        reverse("admin:chat_connection_add"),
        {"name": "Comfy", "kind": "image", "provider": "comfyui", "base_url": "http://127.0.0.1:8188",
         "context_length": 8192, "connect_timeout": 5, "read_timeout": 180, "workflow": '{"1": {"x": 1}}'},
    )  # fmt: skip
    assert response.status_code == 200 and "class_type" in response.content.decode()
    assert not Connection.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_an_environment_only_configuration_starts_and_chats_unchanged(
    worker, use_fake_llm, connect, companion, user, settings
):
    from chat.startup import backends_startup

    settings.ALLOW_DEMO_BACKENDS = False  # as in production: the environment's LLM is enough
    await sync_to_async(backends_startup)()
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi", "client_id": "c"})
    done = await client.receive_until("done")
    assert done["message_id"]
    streamed = [r["json"] for r in use_fake_llm.requests if (r["json"] or {}).get("stream")]
    assert streamed[0]["model"] == "fake-model"
    assert streamed[0]["stop"] == list(DEFAULT_STOP)  # as before
    assert not {"top_p", "min_p", "top_k"} & set(streamed[0])  # no preset: nothing new is sent
    usage = await sync_to_async(UsageTransaction.objects.get)(user=user)
    assert usage.served_by == "Environment LLM / fake-model"


@pytest.mark.parametrize(
    "address",
    ["http://user:pw@127.0.0.1:9/v1", "http://127.0.0.1:9/v1?key=abc", "ftp://127.0.0.1/v1", "nope"],
)
def test_an_address_that_could_carry_a_key_or_is_not_http_is_refused(db, client, address):
    from accounts.models import User

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root-123456"))
    response = client.post(
        reverse("admin:chat_connection_add"),
        {"name": "X", "kind": "llm", "provider": "openai-compatible", "base_url": address,
         "default_model": "m", "context_length": 8192, "connect_timeout": 5, "read_timeout": 60,
         "workflow": "{}"},
    )  # fmt: skip
    assert response.status_code == 200 and not Connection.objects.exists()
