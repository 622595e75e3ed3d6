"""``--log-format text|json``: how a node's log lines look, and how events are logged.

Text (the default) is the familiar ``TIME LEVEL LOGGER: message`` line. JSON is one object
per line, for a machine to read: ``time`` (UTC, ISO 8601, milliseconds), ``level``,
``node``, ``logger``, ``event``, ``message``, then the event's fields. A record logged
through :func:`log_event` carries its ``event`` name and fields (``member_down`` with
``member``, ``status``, ``state``); any other record is ``"event": "log"``. The envelope
wins: a field named like an envelope key never overwrites it (as in the trace schema).

Both go to stderr; the start-up lines on stdout (``actorcache node ID listening on ...``)
stay as they are, since launchers parse them.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "log_event", "setup_logging"]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        out: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "node": self.node_id,
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                out.setdefault(key, value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        # ASCII escapes: a lone surrogate from a hostile peer's id still makes valid JSON.
        return json.dumps(out, default=str)


def setup_logging(level: str, log_format: str, node_id: str) -> None:
    """Send every log record to stderr in ``log_format`` at ``level`` and above."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(node_id) if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def log_event(logger: logging.Logger, level: int, event: str, message: str, **fields: Any) -> None:
    """Log ``message`` as the event ``event`` with ``fields`` (JSON shows them as keys)."""
    logger.log(level, "%s", message, extra={"event": event, "fields": fields})
