"""Log output: one line per event, as text for people or JSON for log pipelines.

Structured fields come from `log_event(logger, "event", key=value)` or from `extra={...}`, and
appear as top-level keys in JSON and as `key=value` pairs in text.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

import orjson

from consumer.config import LOG_FORMATS, LOG_LEVELS, LogFormat

_FIELDS = "lstm_scorer_fields"  # LogRecord attribute holding log_event's fields
# Attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_RESERVED = ("ts", "level", "logger", "event", "msg", "exc", "stack")
_BARE = re.compile(r"[^\s=\"\\]+")
# Dataclasses pass through to _plain: orjson's own encoding would bypass Settings.redacted().
_JSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS
)


def log_event(
    logger: logging.Logger,
    event: str,
    /,
    level: int = logging.INFO,
    exc_info: bool = False,
    **fields: object,
) -> None:
    """Logs a named event with fields; field names may be anything, LogRecord's own included."""
    logger.log(level, event, exc_info=exc_info, extra={_FIELDS: fields}, stacklevel=2)


def _fields(record: logging.LogRecord) -> dict[str, object]:
    out = {k: v for k, v in vars(record).items() if k not in _STANDARD and k != _FIELDS}
    out.update(getattr(record, _FIELDS, {}))
    # A field never hides a top-level key; it is renamed instead.
    return {f"{k}_" if k in _RESERVED else k: v for k, v in out.items()}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: object) -> object:
    """What orjson cannot write itself. Objects offering `redacted()` (Settings) are logged
    through it, so credentials never reach a log line."""
    redacted = getattr(value, "redacted", None)
    if callable(redacted):
        return redacted()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _dumps(value: object) -> str:
    return orjson.dumps(value, default=_plain, option=_JSON_OPTIONS).decode()


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "event" (log_event) or "msg", fields..., "exc"?} per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
        }
        out["event" if hasattr(record, _FIELDS) else "msg"] = record.getMessage()
        out.update(_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return _dumps(out)


class TextFormatter(logging.Formatter):
    """`ts LEVEL logger: message key=value ...`; newlines are escaped to keep one line."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record),
            f"{record.levelname:<7}",
            f"{record.name}:",
            _one_line(record.getMessage()),
        ]
        parts.extend(f"{k}={_text_value(v)}" for k, v in _fields(record).items())
        if record.exc_info:
            parts.append("exc=" + _dumps(self.formatException(record.exc_info)))
        if record.stack_info:
            parts.append("stack=" + _dumps(self.formatStack(record.stack_info)))
        return " ".join(parts)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _text_value(value: object) -> str:
    if isinstance(value, str):
        return value if _BARE.fullmatch(value) else _dumps(value)
    return _dumps(value)


def configure_logging(fmt: LogFormat, level: str, stream: TextIO | None = None) -> None:
    """Replaces the root logger's handlers with one writing `fmt` lines to `stream` (stderr)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    if level.upper() not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Python warnings would otherwise bypass the format (and break JSON lines).
    logging.captureWarnings(True)
