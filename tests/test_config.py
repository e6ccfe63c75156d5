"""The config file and `python -m bot check-config`."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Env
from commands.config import NEXT_CHECKPOINT, ConfigError, load_config, offset_of, parse_config
from commands.parse import format_duration, parse_duration
from tests.processes import ROOT

INTERFACE_EXAMPLE = """
launch:
  name: HotDash Control Center
  t0: 2025-10-16T10:00:00-07:00
  timezone: America/Los_Angeles
channels:
  war_room: C0WARROOM
  broadcast: [C0OPERATORS]
roles:
  commander: U0COMMANDER
  scribe: U0SCRIBE
  eng_oncall: U0ENG
  devops: U0DEVOPS
  cx: U0CX
  exec: U0EXEC
severities:
  sev1: {name: Critical, ack_within: 5m,  escalate_to: [commander, eng_oncall, exec]}
  sev2: {name: High,     ack_within: 15m, escalate_to: [commander, eng_oncall]}
  sev3: {name: Medium,   ack_within: next_checkpoint}
  sev4: {name: Low}
heartbeat:
  every: 30m
  for: 4h
probes:
  - {name: app, url: "https://staging.example/app?mock=0", threshold_ms: 300}
run_of_show:
  - {at: T-24h, text: "Dry run in staging, confirm feature flags"}
  - {at: T+15m, text: "Verify metrics (latency, error rates)"}
rollback:
  webhook: {url: "https://flags.example/api/flags/control-center", method: POST, json: {enabled: false}}
  steps: ["Disable production flag", "Run rollback script", "Notify operators", "Document timeline"]
"""


def test_the_interface_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "warroom.yaml"
    path.write_text(INTERFACE_EXAMPLE)
    config = load_config(str(path))
    assert config.severity("sev1").ack_within == timedelta(minutes=5)
    assert config.severity("sev1").escalate_to == ("commander", "eng_oncall", "exec")
    assert config.severity("sev3").ack_within == NEXT_CHECKPOINT
    assert config.severity("sev4").ack_within is None
    assert config.t0 is not None and config.t0.utcoffset() == timedelta(hours=-7)
    assert [m.label for m in config.run_of_show] == ["T-24h", "T+15m"]
    assert config.webhook is not None and config.webhook.json == {"enabled": False}
    assert config.probes[0].threshold_ms == 300
    assert config.broadcast == ("C0OPERATORS",)


def test_every_key_is_optional() -> None:
    config = parse_config({})
    assert config.war_room == "C0WARROOM"
    assert config.severity("sev2").name == "High"
    assert len(config.contingencies) == 5 and len(config.gonogo_criteria) == 5


@pytest.mark.parametrize(("raw", "error"), [
    ({"severities": {"sev1": {"ack_within": "5 minutes"}}},
     "severities.sev1.ack_within: '5 minutes' is not a duration like 5m"),
    ({"severities": {"sev5": {}}}, "severities.sev5: unknown key"),
    ({"severities": {"sev2": {"escalate_to": ["nobody_role"]}}},
     "severities.sev2.escalate_to[0]: 'nobody_role' is not a role under roles:"),
    ({"channels": {"war_room": "#launch"}}, "channels.war_room: '#launch' is not a Slack channel id"),
    ({"roles": {"commander": "alice"}}, "roles.commander: 'alice' is not a Slack user id"),
    ({"launch": {"t0": "tomorrow"}}, "launch.t0: 'tomorrow' is not an ISO time"),
    ({"launch": {"timezone": "Mars/Olympus"}}, "launch.timezone: 'Mars/Olympus' is not a time zone"),
    ({"heartbeat": {"every": "0m"}}, "heartbeat.every: '0m' is not a duration like 5m"),
    ({"probes": [{"name": "app"}]}, "probes[0].url: is required"),
    ({"run_of_show": [{"at": "noon", "text": "x"}]}, "run_of_show[0].at: 'noon' is not a mark like T-24h"),
    ({"rollback": {"approvals": 3}}, "rollback.approvals: 3 is not 1 or 2"),
    ({"rollback": {"webhook": {"url": "flags"}}}, "rollback.webhook.url: 'flags' is not an http(s) URL"),
    ({"heartbeat": {"evry": "5m"}}, "heartbeat.evry: unknown key"),
])
def test_errors_name_their_key_path(raw: dict, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert any(line.startswith(error) for line in caught.value.errors), caught.value.errors


def test_check_config_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("severities:\n  sev1: {ack_within: '5 minutes'}\nheartbeat: {every: soon}\n")
    run = subprocess.run([sys.executable, "-m", "bot", "check-config", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "severities.sev1.ack_within: '5 minutes' is not a duration like 5m" in run.stdout
    assert "heartbeat.every: 'soon' is not a duration like 5m" in run.stdout
    good = tmp_path / "good.yaml"
    good.write_text(INTERFACE_EXAMPLE)
    ok = subprocess.run([sys.executable, "-m", "bot", "check-config", str(good)], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "ok" in ok.stdout


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("launch: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))


def test_env_defaults_and_trailing_slash() -> None:
    env = Env.from_environ({"SLACK_API_URL": "http://127.0.0.1:9/api"})
    assert env.api_url == "http://127.0.0.1:9/api/"  # WebClient joins URLs with urljoin
    assert env.database_url == "sqlite:///warroom.db" and env.port == 3000 and env.log_level == "INFO"


@pytest.mark.parametrize(("text", "seconds", "shown"), [("90s", 90, "1m30s"), ("5m", 300, "5m"),
                                                        ("1h30m", 5400, "1h30m"), ("4h", 14400, "4h")])
def test_durations(text: str, seconds: int, shown: str) -> None:
    parsed = parse_duration(text)
    assert parsed == timedelta(seconds=seconds)
    assert format_duration(parsed) == shown
    assert parse_duration(shown) == parsed


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "-5m", "5min", "1.5h", "h5",
                                  "720h1s", "99999999999999h", "9" * 5000 + "s", "5m\nx"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None  # never OverflowError: over 30 days is not a duration


def test_thirty_days_is_the_longest_duration() -> None:
    assert parse_duration("720h") == timedelta(days=30) == parse_duration("719h60m")


def test_marks() -> None:
    assert offset_of("T-24h") == timedelta(hours=-24)
    assert offset_of("T0") == timedelta(0)
    assert offset_of("T+1h30m") == timedelta(minutes=90)
    assert offset_of("T+") is None and offset_of("tomorrow") is None
