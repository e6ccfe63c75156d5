"""`python -m bot serve` as a real process: restarts, SIGKILL, replicas, and the benches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import yaml

from tests.harness import SECRET, TOKEN, sign
from tests.http_standin import free_port

ROOT = Path(__file__).resolve().parent.parent


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


class BotProcess:
    """One `python -m bot serve` (started at once); stderr (its JSON log) goes to a file the test can scan.
    `start()` waits until it answers, and starts it again after `kill()` or `stop()` (same port, same log)."""

    def __init__(self, *, database_url: str, api_url: str, log_path: Path, config_path: Path | None = None,
                 extra_env: dict[str, str] | None = None, pythonpath: list[str] | None = None,
                 server: tuple[str, ...] = ("-m", "bot", "serve")) -> None:
        self.port = free_port()
        self.server = [arg.format(port=self.port) for arg in server]  # python's arguments; {port} is filled in
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_", "DATABASE_URL"))}
        env.update({
            "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": api_url,
            "DATABASE_URL": database_url, "PORT": str(self.port),
            "WARROOM_SLACK_TIMEOUT": "1", "LOG_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join([*(pythonpath or []), str(ROOT)]),
            **({"WARROOM_CONFIG": str(config_path)} if config_path else {}),
            **(extra_env or {}),
        })
        self.env = env
        self._spawn()

    def _spawn(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop/kill)
        self.proc = subprocess.Popen([sys.executable, *self.server], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def start(self, timeout: float = 20.0) -> BotProcess:
        if self.proc.poll() is not None:
            self._spawn()
        self.wait_ready(timeout)
        return self

    def slash(self, command: str, text: str, *, user: str = "U0COMMANDER", channel: str = "C0WARROOM",
              timeout: float = 10.0) -> httpx.Response:
        with httpx.Client() as client:
            return signed_post(client, self.url, slash_body(command, text, user=user, channel=channel),
                               timeout=timeout)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"bot exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                r = httpx.get(self.url + "/healthz", timeout=1)
                if r.json().get("db") == "ok":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"bot not ready after {timeout}s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing, like a node dying."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def slash_body(command: str, text: str, *, user: str = "U0COMMANDER", channel: str = "C0WARROOM",
               trigger: str | None = None, response_url: str = "http://127.0.0.1:9/respond/x") -> str:
    """A slash command as Slack sends it; a fresh trigger id unless given (Slack never reuses one)."""
    return urlencode({
        "token": "legacy", "team_id": "T0STANDIN", "team_domain": "standin", "channel_id": channel,
        "channel_name": "launch-war-room", "user_id": user, "user_name": user.lower(), "command": command,
        "text": text, "api_app_id": "A0WARROOM", "is_enterprise_install": "false", "response_url": response_url,
        "trigger_id": f"trigger.{trigger or uuid.uuid4().hex}",
    })


def action_body(action_id: str, value: str, *, user: str = "U0COMMANDER", channel: str = "C0WARROOM",
                trigger: str | None = None, response_url: str = "http://127.0.0.1:9/respond/x") -> str:
    payload = {
        "type": "block_actions", "team": {"id": "T0STANDIN", "domain": "standin"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0STANDIN"}, "api_app_id": "A0WARROOM",
        "token": "legacy", "trigger_id": f"trigger.{trigger or uuid.uuid4().hex}",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": channel},
        "channel": {"id": channel, "name": "launch-war-room"},
        "message": {"type": "message", "ts": "1700000000.000100", "text": "…"}, "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                     "text": {"type": "plain_text", "text": action_id}, "action_ts": str(time.time())}],
    }
    return urlencode({"payload": json.dumps(payload)})


def signed_post(client: httpx.Client, url: str, body: str, *, timeout: float = 10) -> httpx.Response:
    return client.post(url + "/slack/events", content=body.encode(), timeout=timeout, headers={
        "Content-Type": "application/x-www-form-urlencoded", **sign(body)})


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
