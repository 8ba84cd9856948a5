"""The engine's log lines: text for people, or one JSON object per line for a supervisor."""

from __future__ import annotations

import json
import logging
import sys
from typing import Literal

LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """``{"level", "logger", "message"[, "request_id"][, "exception"]}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: LogFormat) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # websockets' server logs every connection and every plain HTTP answer (each health probe,
    # each page load) at INFO; below DEBUG that drowns the sessions' own lines.
    if root.level > logging.DEBUG:
        logging.getLogger("websockets.server").setLevel(logging.WARNING)
    # faster-whisper logs every decode at INFO; one line per interim is noise here.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
