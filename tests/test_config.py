"""The config file and `python -m bot check-config`."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Env
from commands.config import ConfigError, load_config, parse_config
from commands.defaults import NEXT_CHECKPOINT
from commands.parse import format_duration, offset_of, parse_duration
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
    ({"launch": {"foo": 1}}, "launch.foo: unknown key (expected one of announcement, name, t0, timezone)"),
    ({"heartbeat": {"every": 5}}, "heartbeat.every: 5 is not a duration like 5m"),
    ({"heartbeat": 5}, "heartbeat: 5 is not a mapping"),
    ({"roles": ["a", "b"]}, "roles: ['a', 'b'] is not a mapping"),
    ({"channels": {"broadcast": "C0OPERATORS"}}, "channels.broadcast: 'C0OPERATORS' is not a list"),
    ({"probes": [{"name": "app", "url": "http://x"}, 7]}, "probes[1]: 7 is not a mapping"),
    ({"severities": {"sev9": {"name": "Apocalypse"}}},
     "severities.sev9: unknown key (expected one of sev1, sev2, sev3, sev4)"),
    ([1, 2], "(top level): [1, 2] is not a mapping"),
    # issue 18's bounds
    ({"probes": [{"name": "app", "url": "http://x", "threshold_ms": float("nan")}]},
     "probes[0].threshold_ms: nan is not a positive number of milliseconds"),
    ({"probes": [{"name": "app", "url": "http://x", "threshold_ms": float("inf")}]},
     "probes[0].threshold_ms: inf is not a positive number of milliseconds"),
    ({"heartbeat": {"every": "99999999999999h"}}, "heartbeat.every: '99999999999999h' is not a duration like 5m"),
    ({"severities": {"sev2": {"ack_within": "721h"}}}, "severities.sev2.ack_within: '721h' is not a duration"),
    ({"roles": {"commander": "U0COMMANDER\n"}},
     "roles.commander: 'U0COMMANDER\\n' is not a Slack user id like U0123ABC"),
    ({"channels": {"war_room": "C0WARROOM\n"}}, "channels.war_room: 'C0WARROOM\\n' is not a Slack channel id"),
    ({"rollback": {"steps": [f"step {i}" for i in range(52)]}},
     "rollback.steps: has 52 steps; the checklist holds at most 48"),
    ({"rollback": {"webhook": {"url": "https://flags.example", "json": {"note": "x" * 70_000}}}},
     "rollback.webhook.json: is over 64 KiB as JSON"),
    ({"rollback": {"webhook": {"url": "https://flags.example", "json": {"ratio": float("nan")}}}},
     "rollback.webhook.json: cannot be sent as JSON"),
])
def test_errors_name_their_key_path(raw: dict, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert any(line.startswith(error) for line in caught.value.errors), caught.value.errors


def test_no_pydantic_wording_reaches_the_user() -> None:
    raw = {"launch": {"name": [], "bogus": 1}, "roles": {"cx": 5}, "heartbeat": {"every": 5, "for": {}},
           "probes": [{"url": 5, "metric": "speed", "every": []}, "x"], "rollback": {"webhook": [], "approvals": "1"},
           "severities": {"sev1": {"escalate_to": "commander"}, "sev2": [1]}, "gonogo": {"roles": []}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    errors = caught.value.errors
    assert len(errors) >= 12  # every problem at once, not the first
    for line in errors:
        path, _, message = line.partition(": ")
        assert path and message and " " not in path, line
        assert not any(word in line for word in ("Input should", "Value error", "Extra inputs", "pydantic")), line


def test_an_alias_bomb_fails_fast(tmp_path: Path) -> None:
    lines = ['lol: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]  # 9**9 lols
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert time.perf_counter() - started < 0.5
    assert caught.value.errors == [f"{path}: has more than 50 YAML aliases (*name); the one at line 7 is over"]


def test_aliases_cannot_grow_the_webhook_body(tmp_path: Path) -> None:
    # 48 aliases (under the cap) doubling a two-element list 24 times: 2**25 elements once serialised
    lines = ["rollback:", "  webhook:", "    url: https://flags.example/api", "    json:", "      l0: &l0 [on, on]"]
    lines += [f"      l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 25)]
    path = tmp_path / "doubling.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert time.perf_counter() - started < 0.5
    assert caught.value.errors == ["rollback.webhook.json: is over 64 KiB as JSON"]


def test_the_file_and_its_nesting_are_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("launch: {name: big}\n" + "#" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(big))
    assert caught.value.errors == [f"{big}: is over 1 MiB (a config is at most 1 MiB)"]
    deep = tmp_path / "deep.yaml"
    deep.write_text("rollback: {webhook: {url: 'https://x.example', json: " + "[" * 2000 + "]" * 2000 + "}}\n")
    with pytest.raises(ConfigError, match="is nested more than 64 levels deep"):
        load_config(str(deep))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"launch: {name: \xff\xfe}\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(str(binary))


def test_the_bounds_themselves_pass() -> None:
    config = parse_config({"heartbeat": {"for": "720h"}, "rollback": {"steps": [f"s{i}" for i in range(48)]},
                           "probes": [{"name": "app", "url": "http://x", "threshold_ms": 0.5}]})
    assert config.heartbeat_for == timedelta(days=30)
    assert len(config.rollback_steps) == 48 and config.probes[0].threshold_ms == 0.5


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"launch": {"timezone": "Mars/Olympus"}, "heartbeat": {"every": "soon"},
                      "probes": [{"name": "app", "url": "http://x"}, {"name": "app", "url": "gopher://x"}],
                      "severities": {"sev1": {"escalate_to": ["nobody_role"]}}})
    assert sorted(caught.value.errors) == [
        "heartbeat.every: 'soon' is not a duration like 5m",
        "launch.timezone: 'Mars/Olympus' is not a time zone like America/Los_Angeles",
        "probes[1].name: 'app' is used by another probe",
        "probes[1].url: 'gopher://x' is not an http(s) URL",
        "severities.sev1.escalate_to[0]: 'nobody_role' is not a role under roles:",
    ]


def test_null_means_the_default_and_clears_an_ack_clock() -> None:
    config = parse_config({"launch": {"name": None}, "heartbeat": None, "severities": {"sev1": {"ack_within": None}}})
    assert config.launch_name == "launch" and config.heartbeat_every == timedelta(minutes=30)
    assert config.severity("sev1").ack_within is None and config.severity("sev2").ack_within == timedelta(minutes=15)


def test_check_config_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("severities:\n  sev1: {ack_within: '5 minutes'}\n  sev9: {name: Apocalypse}\n"
                    "heartbeat: {every: soon, for: 99999999999999h}\nroles: [a, b]\n")
    run = subprocess.run([sys.executable, "-m", "bot", "check-config", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert sorted(run.stdout.splitlines()) == [
        "heartbeat.every: 'soon' is not a duration like 5m",
        "heartbeat.for: '99999999999999h' is not a duration like 5m",
        "roles: ['a', 'b'] is not a mapping",
        "severities.sev1.ack_within: '5 minutes' is not a duration like 5m",
        "severities.sev9: unknown key (expected one of sev1, sev2, sev3, sev4)",
    ]
    assert "Traceback" not in run.stderr
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
