"""``/healthz``: every check for staff and the scraper; healthy-or-not, briefly cached, for anyone else."""

import pytest
from django.urls import reverse

from companionhub import health

EXPECTED = {"database", "cache", "channel_layer", "broker", "storage", "llm", "images"}


@pytest.fixture(autouse=True)
def _no_cached_health():
    health.forget_cached_health()
    yield
    health.forget_cached_health()


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def counted_checks(monkeypatch):
    """Every check replaced by one that passes and counts its runs."""
    runs = dict.fromkeys(health.CHECKS, 0)

    def counting(name):
        def check():
            runs[name] += 1
            return {}

        return check

    for name, (_, critical) in list(health.CHECKS.items()):
        monkeypatch.setitem(health.CHECKS, name, (counting(name), critical))
    return runs


@pytest.mark.django_db
def test_it_reports_every_check_healthy_to_staff(staff_client):
    response = staff_client.get(reverse("healthz"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == EXPECTED
    for name, check in body["checks"].items():
        assert check["ok"] is True, (name, check)
        assert isinstance(check["latency_ms"], float | int)


@pytest.mark.django_db
def test_the_metrics_token_gets_the_details(client, settings):
    settings.METRICS_TOKEN = "s" * 40
    response = client.get(reverse("healthz"), HTTP_AUTHORIZATION=f"Bearer {'s' * 40}")
    assert response.status_code == 200
    assert set(response.json()["checks"]) == EXPECTED


@pytest.mark.django_db
def test_anonymous_callers_get_a_bare_status(client, user):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    # Signed in but not staff: the same.
    client.force_login(user)
    assert client.get(reverse("healthz")).json() == {"status": "ok"}


@pytest.mark.django_db
def test_anonymous_requests_within_the_cache_time_run_the_checks_once(client, settings, counted_checks):
    settings.HEALTHZ_CACHE_SECONDS = 60
    for _ in range(3):
        assert client.get(reverse("healthz")).status_code == 200
    assert counted_checks == dict.fromkeys(health.CHECKS, 1)


@pytest.mark.django_db
def test_anonymous_requests_run_the_checks_again_when_the_cache_is_off(client, settings, counted_checks):
    settings.HEALTHZ_CACHE_SECONDS = 0
    client.get(reverse("healthz"))
    client.get(reverse("healthz"))
    assert counted_checks == dict.fromkeys(health.CHECKS, 2)


@pytest.mark.django_db
def test_anonymous_callers_get_503_without_the_reason(client, monkeypatch):
    def broken():
        raise ConnectionError("broker at redis://secret-host:6379 refused")

    monkeypatch.setitem(health.CHECKS, "broker", (broken, True))
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy"}
    assert b"secret-host" not in response.content


@pytest.mark.django_db
def test_it_answers_503_when_the_broker_is_unreachable(staff_client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = staff_client.get(reverse("healthz"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_it_answers_503_when_the_cache_is_unreachable(staff_client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "companionhub.redis_cache.SharedClientRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.5},
        }
    }
    response = staff_client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["ok"] is False


@pytest.mark.django_db
def test_a_down_llm_is_reported_but_not_critical(staff_client, monkeypatch):
    def broken():
        raise ConnectionError("llm down")

    monkeypatch.setitem(health.CHECKS, "llm", (broken, False))
    response = staff_client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json()["checks"]["llm"]["ok"] is False


def test_it_rejects_post(client):
    assert client.post(reverse("healthz")).status_code == 405


@pytest.mark.django_db
def test_head_answers_with_the_status_and_no_body(client, staff_client, monkeypatch):
    response = client.head(reverse("healthz"))
    assert response.status_code == 200 and response.content == b""

    def broken():
        raise ConnectionError("down")

    monkeypatch.setitem(health.CHECKS, "broker", (broken, True))
    health.forget_cached_health()
    assert client.head(reverse("healthz")).status_code == 503
    assert staff_client.head(reverse("healthz")).status_code == 503


@pytest.fixture
def llm_connection(db, fake_llm, settings):
    from chat.backends import reset_backends
    from chat.connections import connection_save
    from chat.models import Connection

    settings.HEALTHZ_PROBE_SECONDS = 60
    reset_backends()
    yield connection_save(
        connection=Connection(name="Box", kind="llm", provider="openai-compatible",
                              base_url=fake_llm.base_url, default_model="m"),
        api_key="sk-health-secret",
    )  # fmt: skip
    reset_backends()


def test_staff_see_a_real_probe_of_each_connection(staff_client, llm_connection, fake_llm):
    body = staff_client.get(reverse("healthz")).json()
    assert body["connections"]["Box"]["ok"] is True
    assert body["checks"]["llm"]["connection"] == "Box"
    staff_client.get(reverse("healthz"))
    probes = [r for r in fake_llm.requests if r["path"].endswith("/models")]
    assert len(probes) == 1  # cached: not one probe per hit
    assert probes[0]["headers"]["authorization"] == "Bearer sk-health-secret"
    assert "sk-health-secret" not in staff_client.get(reverse("healthz")).content.decode()


def test_a_failing_connection_makes_the_bare_status_degraded_not_down(client, llm_connection, fake_llm):
    fake_llm.down()
    response = client.get(reverse("healthz"))
    assert response.status_code == 200  # pages and history still work
    assert response.json() == {"status": "degraded"}
