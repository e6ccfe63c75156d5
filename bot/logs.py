"""Logs are one JSON object a line on stderr; tokens and secrets never appear in them."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

_TOKEN = re.compile(r"xox[abprs]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+")
# a response_url lets anyone post into its channel: Slack's hooks, and any value logged under that name
_RESPONSE_URL = re.compile(r"https?://hooks\.slack\.com/\S+|(?<=response_url)(\\?[\"']?\s*[:=]\s*\\?[\"']?)[^\s\"'&,}\\]+")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        text = _RESPONSE_URL.sub(lambda m: (m.group(1) or "") + "[redacted-url]", text)
        return _SIGNATURE.sub("v0=[redacted]", _TOKEN.sub("[redacted-token]", text))


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | type(None)) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, ensure_ascii=False, default=str))


def configure(level: str, secrets: Iterable[str], stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(Redactor(secrets)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level, logging.INFO))
    for noisy in ("apscheduler", "waitress.queue", "slack_sdk.web.base_client", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # whatever LOG_LEVEL says: these log whole requests at DEBUG (response_urls, bodies, headers)
    for verbose in ("slack_sdk.webhook", "slack_sdk.web", "slack_bolt", "httpx", "httpcore"):
        logging.getLogger(verbose).setLevel(max(logging.INFO, root.level))
