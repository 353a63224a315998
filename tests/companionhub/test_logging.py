import io
import json
import logging
from logging.config import dictConfig

import pytest
import structlog
from django.utils.log import DEFAULT_LOGGING

from companionhub.logconfig import build_logging


@pytest.mark.django_db
def test_every_request_line_carries_a_request_id(client, caplog):
    caplog.set_level(logging.INFO)
    client.get("/healthz")
    request_lines = [r.msg for r in caplog.records if isinstance(r.msg, dict) and "request_id" in r.msg]
    assert request_lines, "no log line carried a request_id"
    assert {line["event"] for line in request_lines} >= {"request_started", "request_finished"}
    assert len({line["request_id"] for line in request_lines}) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("hops", "logged"), [(0, "10.0.0.9"), (1, "198.51.100.7")])
def test_the_request_log_records_the_address_the_rate_limits_use(client, caplog, settings, hops, logged):
    """A forged X-Forwarded-For entry (left of what the trusted proxies wrote) is not logged."""
    settings.TRUSTED_PROXY_HOPS = hops
    caplog.set_level(logging.INFO)
    client.get("/healthz", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="203.0.113.66, 198.51.100.7")
    lines = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    assert [line.get("ip") for line in lines if line["event"] == "request_started"] == [logged]


def test_json_format_writes_one_json_object_per_line():
    config = build_logging(fmt="json", level="INFO")
    formatter = config["formatters"]["structured"]["()"](
        processors=config["formatters"]["structured"]["processors"],
        foreign_pre_chain=config["formatters"]["structured"]["foreign_pre_chain"],
    )
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain stdlib line", None, None)
    line = formatter.format(record)
    data = json.loads(line)
    assert data["event"] == "plain stdlib line"
    assert data["level"] == "info"
    assert "timestamp" in data


def test_console_format_is_not_json():
    config = build_logging(fmt="console", level="INFO")
    renderer = config["formatters"]["structured"]["processors"][-1]
    assert isinstance(renderer, structlog.dev.ConsoleRenderer)


def test_the_access_line_of_one_request_is_written_once(settings):
    """Django's default logging (applied first) plus ours must leave one handler on the way up."""
    settings.DEBUG = True  # Django's plain console handler writes only with DEBUG on
    stream = io.StringIO()
    try:
        dictConfig(DEFAULT_LOGGING)
        dictConfig(build_logging(fmt="console", level="INFO"))
        for name in (None, "django", "django.server", "django.channels.server"):
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler):
                    handler.setStream(stream)
        logging.getLogger("django.channels.server").info("HTTP GET /healthz 200 [0.01, 127.0.0.1:5000]")
        logging.getLogger("django.request").warning("Not Found: /nowhere")
    finally:
        dictConfig(settings.LOGGING)
    written = stream.getvalue()
    assert written.count("HTTP GET /healthz 200") == 1, written
    assert written.count("Not Found: /nowhere") == 1, written
