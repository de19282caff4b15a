"""Log lines: one per event, JSON that parses, fields in both formats, no secrets."""

from __future__ import annotations

import dataclasses
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from consumer.config import build_settings
from consumer.logging_setup import configure_logging, log_event

log = logging.getLogger("consumer.test")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_parse_and_carry_fields() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    log_event(log, "partitions_assigned", partitions=[0, 1], topic="samples", restored=True)
    log.info("plain %s", "message", extra={"partition": 3})
    log.debug("hidden below the level")
    records = [orjson.loads(line) for line in lines(out)]
    assert len(records) == 2
    first, second = records
    assert first["event"] == "partitions_assigned"
    assert (first["level"], first["logger"]) == ("INFO", "consumer.test")
    assert first["partitions"] == [0, 1]
    assert first["topic"] == "samples"
    assert first["restored"] is True
    assert first["ts"].endswith("Z")
    assert second["msg"] == "plain message"
    assert second["partition"] == 3
    assert "event" not in second


@dataclasses.dataclass(frozen=True)
class Position:
    partition: int
    offset: int


def test_values_orjson_cannot_write_still_log() -> None:
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    log_event(log, "committed", position=Position(3, 99), path=Path("/m.keras"), n=np.int64(4))
    record = orjson.loads(lines(out)[0])
    assert record["position"] == {"partition": 3, "offset": 99}
    assert (record["path"], record["n"]) == ("/m.keras", 4)


def test_fields_never_replace_top_level_keys() -> None:
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    log_event(log, "odd", level=logging.WARNING, msg="m", ts=1, name="n", event="e")
    record = orjson.loads(lines(out)[0])
    assert (record["event"], record["level"]) == ("odd", "WARNING")
    assert (record["msg_"], record["ts_"], record["event_"]) == ("m", 1, "e")
    assert record["name"] == "n"


def test_exceptions_stay_on_one_line() -> None:
    for fmt in ("json", "text"):
        out = io.StringIO()
        configure_logging(fmt, "INFO", stream=out)
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            log_event(log, "commit_failed", level=logging.ERROR, exc_info=True, attempt=2)
        log.info("multi\nline message")
        assert len(lines(out)) == 2, fmt
        assert "RuntimeError: boom" in out.getvalue()
        if fmt == "json":
            assert "RuntimeError" in orjson.loads(lines(out)[0])["exc"]


def test_text_format() -> None:
    out = io.StringIO()
    configure_logging("text", "DEBUG", stream=out)
    log_event(log, "started", backend="numpy", topic="my topic", max_batch=1024, extra={"a": 1})
    (line,) = lines(out)
    timestamp, level, logger, rest = line.split(maxsplit=3)
    assert timestamp.endswith("Z")
    assert (level, logger) == ("INFO", "consumer.test:")
    assert rest == 'started backend=numpy topic="my topic" max_batch=1024 extra={"a":1}'


def test_warnings_go_through_the_format() -> None:
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", UserWarning, stacklevel=1)
    record = orjson.loads(lines(out)[0])
    assert record["logger"] == "py.warnings"
    assert "deprecated thing" in record["msg"]


def test_bad_arguments_rejected() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("json", "chatty")
    with pytest.raises(ValueError, match="log format"):
        configure_logging("yaml", "INFO")  # type: ignore[arg-type]


def test_secret_in_settings_never_logged() -> None:
    secret = "s3cr3t-9d1e-password"
    settings = build_settings(
        ["--model", "m.keras"],
        {"KAFKA_SASL_PASSWORD": secret, "KAFKA_PRODUCER_SSL_KEY_PEM": "pem-" + secret},
    )
    for fmt in ("json", "text"):
        out = io.StringIO()
        configure_logging(fmt, "INFO", stream=out)
        log_event(log, "starting", settings=settings.redacted())
        log.info("settings %s", settings)
        log.info("settings %r", settings, extra={"settings": settings})
        text = out.getvalue()
        assert len(lines(out)) == 3
        assert "sasl.password" in text
        assert secret not in text, fmt
