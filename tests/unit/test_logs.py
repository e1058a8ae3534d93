"""Logging: JSON lines, bridged sources, and secrets that never reach the output."""

from __future__ import annotations

import io
import json
import logging

import pytest
from twisted.logger import Logger

from xprov import logs


@pytest.fixture
def output():
    stream = io.StringIO()
    logs.configure("json", "debug", stream)
    logs.REDACTOR.update(["hunter2-secret", "spa&<2001>\"'Secret"])
    yield stream
    logs.REDACTOR.update([])


def events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines(output) -> None:
    logs.get_logger("test").info("hello", n=1)
    (event,) = events(output)
    assert event["event"] == "hello" and event["n"] == 1 and event["level"] == "info"
    assert event["component"] == "test" and "timestamp" in event


def test_secret_values_and_keys_are_redacted(output) -> None:
    log = logs.get_logger("test")
    log.info(
        "login",
        detail="user 1001 password hunter2-secret",
        password="anything",
        nested={"x": ["hunter2-secret"]},
        token="t0k3n",
    )
    log.info("escaped", value="spa&<2001>\"'Secret")
    text = output.getvalue()
    assert "hunter2-secret" not in text and "anything" not in text and "t0k3n" not in text
    assert "2001>" not in text
    assert "user 1001 password ***" in text


def test_counts_under_a_secrets_name_stay_numbers(output) -> None:
    """The break-it pass saw "counts": {"wrong admin token": "***"}: how many guesses were
    suppressed is what an operator needs, and a number is no secret."""
    log = logs.get_logger("test")
    log.info("suppressed", counts={"wrong admin token": 5}, token_length=12, password=None)
    log.info("given", token="1234567", nested={"password": "p4ssw0rd!"})
    first, second = events(output)
    assert first["counts"] == {"wrong admin token": 5} and first["token_length"] == 12
    assert first["password"] is None
    assert second["token"] == "***" and second["nested"] == {"password": "***"}


def test_tracebacks_are_redacted(output) -> None:
    try:
        raise ValueError("bad value hunter2-secret")
    except ValueError:
        logs.get_logger("test").exception("failed")
    (event,) = events(output)
    assert "Traceback" in event["exception"]
    assert "hunter2-secret" not in output.getvalue()


def test_stdlib_and_twisted_are_bridged(output) -> None:
    logging.getLogger("pymysql").warning("connection to %s failed", "db")
    Logger(namespace="twisted.test").error("twisted says {what}", what="hunter2-secret")
    found = events(output)
    assert {"event": "connection to db failed", "component": "pymysql"}.items() <= found[0].items()
    assert found[1]["event"] == "twisted says ***"
    assert found[1]["level"] == "error"


def test_scrub_cost_does_not_grow_with_secret_count() -> None:
    redactor = logs.Redactor()
    redactor.update(f"pw-{i:06d}" for i in range(100_000))
    assert redactor.scrub("a pw-004242 b pw-99 c") == "a *** b pw-99 c"
    assert redactor.scrub("x") == "x"


def test_twisted_port_chatter_is_dropped(output) -> None:
    from twisted.python import log as legacy

    legacy.msg("(UDP Port 40123 Closed)")
    legacy.msg("_TransferPort starting on 40123")
    legacy.msg("something else")
    assert [e["event"] for e in events(output)] == ["something else"]
