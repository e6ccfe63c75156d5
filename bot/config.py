"""The environment: tokens, URLs, the port (the launch config itself is commands/config.py)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

KEY_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET|_PASSWORD)\Z")


@dataclass(frozen=True)
class Env:
    bot_token: str | None
    signing_secret: str | None
    app_token: str | None
    api_url: str
    database_url: str
    config_path: str | None
    port: int
    log_level: str
    slack_timeout: float = 10.0  # seconds the outbox waits for one Web API answer (WARROOM_SLACK_TIMEOUT)
    board_token: str | None = None  # WARROOM_BOARD_TOKEN: enables GET /board (bot/board.py)
    # the values of variables named like a key (PAGERDUTY_ROUTING_KEY, STATUSPAGE_API_KEY, …): kept out of logs
    integration_keys: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Env:
        e = os.environ if environ is None else environ
        api_url = e.get("SLACK_API_URL") or "https://slack.com/api/"
        config_path = e.get("WARROOM_CONFIG") or ("warroom.yaml" if Path("warroom.yaml").exists() else None)
        return cls(
            bot_token=e.get("SLACK_BOT_TOKEN") or None,
            signing_secret=e.get("SLACK_SIGNING_SECRET") or None,
            app_token=e.get("SLACK_APP_TOKEN") or None,
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            database_url=e.get("DATABASE_URL") or "sqlite:///warroom.db",
            config_path=config_path,
            port=int(e.get("PORT") or 3000),
            log_level=(e.get("LOG_LEVEL") or "INFO").upper(),
            slack_timeout=_positive_float(e.get("WARROOM_SLACK_TIMEOUT"), 10.0),
            board_token=e.get("WARROOM_BOARD_TOKEN") or None,
            integration_keys=tuple(v for k, v in e.items() if KEY_NAME.search(k) and v),
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.bot_token, self.signing_secret, self.app_token, self.board_token,
                                 *self.integration_keys) if s)


def _positive_float(text: str | None, default: float) -> float:
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if value > 0 else default


