import pytest
from django.urls import reverse

EXPECTED = {"database", "cache", "channel_layer", "broker", "storage", "llm", "images"}


@pytest.mark.django_db
def test_it_reports_every_check_healthy(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == EXPECTED
    for name, check in body["checks"].items():
        assert check["ok"] is True, (name, check)
        assert isinstance(check["latency_ms"], float | int)


@pytest.mark.django_db
def test_it_answers_503_when_the_broker_is_unreachable(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_it_answers_503_when_the_cache_is_unreachable(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.5},
        }
    }
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["ok"] is False


@pytest.mark.django_db
def test_a_down_llm_is_reported_but_not_critical(client, monkeypatch):
    from companionhub import health

    def broken():
        raise ConnectionError("llm down")

    monkeypatch.setitem(health.CHECKS, "llm", (broken, False))
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json()["checks"]["llm"]["ok"] is False


def test_it_rejects_post(client):
    assert client.post(reverse("healthz")).status_code == 405
