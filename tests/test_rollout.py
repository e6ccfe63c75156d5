"""/rollout, gates and rollback triggers through the real stack: signed requests into Bolt, the Slack
stand-in, a metrics source stand-in (Prometheus's API format and a JSON document) and a flag service."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from bot.flag_webhook import run_rollout_webhooks
from commands.config import Config, parse_config
from commands.config_file import ConfigError
from db.models import Rollback
from db.rollout import MetricReading, RolloutPhase, TriggerFiring
from tests.conftest import TEST_CONFIG
from tests.console_helpers import (
    COMMANDER,
    ENG,
    INJECTION,
    OPERATORS,
    WAR_ROOM,
    click,
    decisions,
    outbox_count,
    slash,
    texts,
)
from tests.flag_server import FlagServer, closed_port_url
from tests.harness import Harness
from tests.metrics_server import MetricsServer
from tests.times import at

ERRORS = 'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'
GOOD = {ERRORS: 0.004, "p95_ms": 850.0}


def rollout_config(metrics_url: str, flags_url: str | None, *, retries: int = 1, **extra: Any) -> dict[str, Any]:
    """Seed 003's phases with seed 000's thresholds (web error rate < 1 %, P95 < 1.5 s)."""
    rollout: dict[str, Any] = {
        "phases": [{"name": "pilot", "percent": 5, "hold_for": "2h", "gates": ["error_rate < 0.01", "p95_ms < 1500"]},
                   {"name": "half", "percent": 50, "hold_for": "24h", "gates": ["error_rate < 0.01"]},
                   {"name": "GA", "percent": 100}],
        "rollback_when": [{"when": "error_rate > 0.2", "for": "4m", "action": "propose"},
                          {"when": "error_rate > 0.5", "for": "10m", "action": "rollback"}],
    }
    if flags_url:
        rollout["webhook"] = {"url": flags_url, "json": {"percent": "{percent}", "note": "at {percent}%"},
                              "retries": retries, "timeout": "1s"}
    return {**TEST_CONFIG, "channels": {"war_room": WAR_ROOM, "broadcast": [OPERATORS]},
            "metrics": {"every": "1m", "sources": [
                {"name": "error_rate", "prometheus": metrics_url, "query": ERRORS},
                {"name": "p95_ms", "url": f"{metrics_url}/metrics.json", "json_path": "latency.p95_ms"}]},
            "rollout": rollout, **extra}


@pytest.fixture
def source() -> Iterator[MetricsServer]:
    with MetricsServer() as server:
        server.values.update(GOOD)
        yield server


@pytest.fixture
def flags() -> Iterator[FlagServer]:
    with FlagServer() as server:
        yield server


@pytest.fixture
def config(request: pytest.FixtureRequest, source: MetricsServer, flags: FlagServer) -> Config:
    marker = request.node.get_closest_marker("rollout_config")
    kwargs = dict(marker.kwargs) if marker else {}
    url = kwargs.pop("url", flags.url)
    return parse_config(rollout_config(source.url, closed_port_url() if url == "down" else url, **kwargs))


def read(bot: Harness) -> int:
    n = bot.runtime.scheduler.metrics.run_once()
    bot.deliver()
    return n


def minutes(bot: Harness, source: MetricsServer, n: int, **values: float | None) -> None:
    """n more readings a minute apart (the first now when none was taken yet, else a minute after the
    last), the error rate (and p95) set to the values given."""
    if "error_rate" in values:
        source.values[ERRORS] = values["error_rate"]
    if "p95_ms" in values:
        source.values["p95_ms"] = values["p95_ms"]
    with bot.session() as s:
        started = s.exec(select(MetricReading.id).limit(1)).first() is not None
    for i in range(n):
        if i or started:
            bot.clock.advance(timedelta(minutes=1))
        assert read(bot) == 2


def fire_webhooks(bot: Harness) -> int:
    n = run_rollout_webhooks(bot.runtime.dispatcher)
    bot.deliver()
    return n


def phases(bot: Harness) -> list[RolloutPhase]:
    with bot.session() as s:
        return list(s.exec(select(RolloutPhase).order_by(RolloutPhase.position)).all())


def triggered(bot: Harness) -> list[str]:
    return [t for t in texts(bot) if "*Rollback trigger*" in t]


def broadcasts(bot: Harness, channel: str) -> list[str]:
    return [t for t in texts(bot, channel) if t.startswith("Rollback initiated at")]


def test_acceptance_start_calls_the_webhook_with_the_first_phase_percent(bot: Harness, flags: FlagServer) -> None:
    out = slash(bot, "/rollout", "start")
    assert out.startswith("Rollout started: phase *pilot* at 5%")
    bot.deliver()
    assert any(t.startswith(":arrow_forward: *Rollout*: started in phase *pilot*: 5% of the audience") for t in texts(bot))
    assert flags.calls == []  # never in the request: the runner calls it
    assert fire_webhooks(bot) == 1 and fire_webhooks(bot) == 0
    [call] = flags.calls
    assert call.json == {"percent": 5, "note": "at 5%"}
    assert call.headers["Idempotency-Key"] == f"warroom-rollout-{phases(bot)[0].launch_id}-{phases(bot)[0].id}"
    assert "Rollout webhook answered HTTP 200: the flag is at 5% (phase pilot)." in texts(bot)
    [d] = decisions(bot, "rollout")
    assert (d.text, d.actor) == ("pilot (5%)", COMMANDER)
    assert phases(bot)[0].webhook_status == "HTTP 200"
    assert slash(bot, "/rollout", "start").startswith("The rollout already started; it is in phase *pilot*")
    assert len(phases(bot)) == 1


def test_acceptance_advance_is_refused_until_every_gate_held_for_hold_for(
        bot: Harness, source: MetricsServer, flags: FlagServer) -> None:
    slash(bot, "/rollout", "start")
    fire_webhooks(bot)
    minutes(bot, source, 61)  # an hour of good readings
    out = slash(bot, "/rollout", "advance")
    assert out == ("Not advancing: gate `error_rate &lt; 0.01` of phase *pilot* has held for 1h of the 2h it must hold "
                   f"(latest reading: 0.004 at {at('11:00')}). Nothing changed.")
    assert slash(bot, "/rollout", "advance", user=ENG).startswith("Only the commander can use `/rollout advance`")
    assert len(phases(bot)) == 1 and len(decisions(bot, "rollout")) == 1
    status = slash(bot, "/rollout", user=ENG)  # status: anyone
    assert status.startswith(f"*Rollout*: phase *pilot* at 5%, entered {at('10:00')} by <@U0COMMANDER>, held 1h of 2h.")
    assert f"• `error_rate &lt; 0.01`: pass (0.004 at {at('11:00')}), holding for 1h" in status
    assert f"• `p95_ms &lt; 1500`: pass (850 at {at('11:00')}), holding for 1h" in status
    assert "Next: *half* at 50%." in status
    minutes(bot, source, 61)
    assert slash(bot, "/rollout", "advance").startswith("Advanced to phase *half* at 50%")
    assert fire_webhooks(bot) == 1
    assert flags.calls[-1].json == {"percent": 50, "note": "at 50%"}
    assert [p.phase for p in phases(bot)] == ["pilot", "half"]
    assert [d.text for d in decisions(bot, "rollout")] == ["pilot (5%)", "half (50%)"]
    # the new phase's gates count from when it was entered
    out = slash(bot, "/rollout", "advance")
    assert out.startswith("Not advancing: gate `error_rate &lt; 0.01` of phase *half* has held for 0s of the 24h"), out


def test_a_gate_that_fails_names_itself_and_its_reading(bot: Harness, source: MetricsServer) -> None:
    slash(bot, "/rollout", "start")
    minutes(bot, source, 121)
    minutes(bot, source, 2, p95_ms=1720.0)  # p95 over seed 000's 1.5 s
    out = slash(bot, "/rollout", "advance")
    assert out == (f"Not advancing: gate `p95_ms &lt; 1500` of phase *pilot* fails (latest reading: 1720 at {at('12:02')}). "
                   "Nothing changed.")
    minutes(bot, source, 2, p95_ms=900.0)  # the streak starts again: two minutes is not two hours
    assert "gate `p95_ms &lt; 1500` of phase *pilot* has held for 1m of the 2h" in slash(bot, "/rollout", "advance")
    assert len(phases(bot)) == 1


def test_a_failed_reading_is_stored_as_a_failure_never_a_number(bot: Harness, source: MetricsServer) -> None:
    slash(bot, "/rollout", "start")
    minutes(bot, source, 121)
    source.status = 503
    bot.clock.advance(timedelta(minutes=1))
    read(bot)
    with bot.session() as s:
        latest = s.exec(select(MetricReading).order_by(MetricReading.id.desc())).all()[:2]
    assert {(r.source, r.ok, r.value) for r in latest} == {("error_rate", False, None), ("p95_ms", False, None)}
    assert {r.error for r in latest} == {"HTTP 503, not JSON", "HTTP 503"}
    out = slash(bot, "/rollout", "advance")
    assert out.startswith("Not advancing: gate `error_rate &lt; 0.01` of phase *pilot* has no number: the latest reading failed")
    assert slash(bot, "/heartbeat").startswith("Heartbeat posted")
    bot.deliver()
    beat = [t for t in texts(bot) if t.startswith("Status Update")][-1]
    assert "Metrics: error_rate reading failed (HTTP 503, not JSON) (gate `error_rate &lt; 0.01`: unknown)" in beat
    # no data from Prometheus is not zero either
    source.status = 200
    source.values[ERRORS] = None
    bot.clock.advance(timedelta(minutes=1))
    read(bot)
    with bot.session() as s:
        row = s.exec(select(MetricReading).where(MetricReading.source == "error_rate")
                     .order_by(MetricReading.id.desc())).first()
    assert row is not None and (row.ok, row.value, row.error) == (False, None, "no data (the query returned no samples)")


def test_heartbeat_and_checkpoint_show_each_metric_against_its_gate(bot: Harness, source: MetricsServer) -> None:
    minutes(bot, source, 1, error_rate=0.02)
    slash(bot, "/heartbeat")
    slash(bot, "/checkpoint")
    bot.deliver()
    beat = [t for t in texts(bot) if t.startswith("Status Update")][-1]
    assert "Metrics: error_rate 0.02 (gate `error_rate &lt; 0.01`: *FAIL*), p95_ms 850 (gate `p95_ms &lt; 1500`: pass)." in beat
    checkpoint = [t for t in texts(bot) if "*Checkpoint*" in t][-1]
    assert "*Metrics*: error_rate 0.02 (gate `error_rate &lt; 0.01`: *FAIL*)" in checkpoint


def test_the_checkpoints_widen_is_an_advance(bot: Harness, source: MetricsServer, flags: FlagServer) -> None:
    slash(bot, "/rollout", "start")
    minutes(bot, source, 30)
    slash(bot, "/checkpoint")
    bot.deliver()
    out = click(bot, "checkpoint_decision:widen", "widen", ref="checkpoint:1")
    assert out.startswith("Not advancing: gate `error_rate &lt; 0.01` of phase *pilot* has held for 29m")
    assert len(phases(bot)) == 1
    minutes(bot, source, 95)
    assert click(bot, "checkpoint_decision:widen", "widen", ref="checkpoint:1") == "Decision recorded: widen."
    bot.deliver()
    assert [p.phase for p in phases(bot)] == ["pilot", "half"]
    assert any("advanced from *pilot* to phase *half*" in t and "(the checkpoint's widen)" in t for t in texts(bot))
    fire_webhooks(bot)
    assert [c.json["percent"] for c in flags.calls] == [5, 50]


def test_hold_is_a_decision_and_the_commanders(bot: Harness) -> None:
    assert slash(bot, "/rollout", "hold waiting").startswith("The rollout has not started")
    slash(bot, "/rollout", "start")
    assert slash(bot, "/rollout", "hold p95 creeping", user=ENG).startswith("Only the commander")
    assert "needs its reason" in slash(bot, "/rollout", "hold")
    assert slash(bot, "/rollout", f"hold {INJECTION}") == "Holding at phase *pilot* (5%); logged as a decision."
    bot.deliver()
    [held] = [t for t in texts(bot) if t.startswith(":pause_button: *Rollout held*")]
    assert "<!channel>" not in held and "&lt;!channel&gt;" in held and "<@U0EXEC>" not in held
    assert decisions(bot, "rollout")[-1].text == f"hold at pilot: {INJECTION}"


def test_malformed_and_unconfigured_commands_change_nothing(bot: Harness, config: Config) -> None:
    before = outbox_count(bot)
    assert "`bogus` is not a /rollout subcommand" in slash(bot, "/rollout", "bogus")
    assert "Usage: /rollout" in slash(bot, "/rollout", "bogus")
    assert "takes nothing after it" in slash(bot, "/rollout", "start now")
    assert slash(bot, "/rollout", "advance").startswith("The rollout has not started")
    assert slash(bot, "/rollout", "hold " + "x" * 501).startswith("The reason is 501 characters")
    assert outbox_count(bot) == before and phases(bot) == []
    assert "not started; the first phase is *pilot* at 5%" in slash(bot, "/rollout")


@pytest.mark.rollout_config(rollout={})
def test_without_phases_rollout_says_how_to_configure_it(bot: Harness) -> None:
    assert slash(bot, "/rollout", "start").startswith("No rollout is configured")
    assert phases(bot) == []


def test_acceptance_a_propose_trigger_held_for_its_window_posts_the_trigger_and_the_confirmation(
        bot: Harness, source: MetricsServer) -> None:
    minutes(bot, source, 4, error_rate=0.3)  # 3 minutes of readings: not yet the 4m window
    assert triggered(bot) == []
    minutes(bot, source, 2)
    [trigger] = triggered(bot)
    assert "`error_rate &gt; 0.2 for 4m` has held for every reading (latest: 0.3)" in trigger
    assert "<@U0COMMANDER> confirm or cancel the rollback" in trigger
    confirmation = bot.posts(WAR_ROOM)[-1]
    assert confirmation["text"].startswith(f":warning: *Rollback requested* by warroom (a rollback trigger) at {at('10:04')}: error_rate &gt; 0.2 for 4m")
    assert any(e.get("action_id", "").startswith("rollback_confirm") for b in confirmation["blocks"]
               for e in b.get("elements", []))
    minutes(bot, source, 3)  # the same streak fires once
    assert len(triggered(bot)) == 1
    with bot.session() as s:
        [rollback] = s.exec(select(Rollback)).all()
    assert (rollback.status, rollback.reason) == ("pending", "error_rate > 0.2 for 4m")
    assert broadcasts(bot, WAR_ROOM) == []
    out = click(bot, "rollback_cancel", str(rollback.id), ref=f"rollback:{rollback.id}")
    assert out.startswith("You cancelled the rollback")


def test_a_trigger_that_flickers_does_nothing(bot: Harness, source: MetricsServer) -> None:
    for rate in (0.3, 0.3, 0.3, 0.005, 0.3, 0.3, 0.3, 0.3, None, 0.3, 0.3):  # None: a failed reading breaks it too
        minutes(bot, source, 1, error_rate=rate)
    assert triggered(bot) == []
    with bot.session() as s:
        assert s.exec(select(Rollback)).all() == [] and s.exec(select(TriggerFiring)).all() == []


def test_acceptance_a_rollback_trigger_rolls_back_at_once_naming_the_condition(
        bot: Harness, source: MetricsServer) -> None:
    minutes(bot, source, 11, error_rate=0.6)
    assert broadcasts(bot, WAR_ROOM) == [
        f"Rollback initiated at {at('10:10')} due to error_rate &gt; 0.5 for 10m. Operators: revert to legacy workflows "
        "immediately. Follow instructions in Runbook §6."]
    assert len(broadcasts(bot, OPERATORS)) == 1
    assert any("the rollback runs now, without confirmation" in t for t in triggered(bot))
    minutes(bot, source, 5)
    assert len(broadcasts(bot, WAR_ROOM)) == 1 and len(broadcasts(bot, OPERATORS)) == 1
    rollback_decisions = decisions(bot, "rollback")
    assert [d.text for d in rollback_decisions] == ["error_rate > 0.5 for 10m"]
    with bot.session() as s:
        [rollback] = s.exec(select(Rollback)).all()
    assert rollback.status == "confirmed" and rollback.webhook_status == "not configured"


def test_a_restart_mid_phase_keeps_the_phase_and_its_clock(
        bot: Harness, source: MetricsServer, standin: Any, database_url: str, config: Config) -> None:
    slash(bot, "/rollout", "start")
    minutes(bot, source, 60)
    bot.close()
    again = Harness(standin, database_url, config, bot.clock)
    try:
        assert slash(again, "/rollout").startswith(f"*Rollout*: phase *pilot* at 5%, entered {at('10:00')}")
        minutes(again, source, 62)
        assert slash(again, "/rollout", "advance").startswith("Advanced to phase *half*")
        assert [p.phase for p in phases(again)] == ["pilot", "half"]
    finally:
        again.close()
        bot.close = lambda: None  # type: ignore[method-assign]


@pytest.mark.rollout_config(retries=2)
@pytest.mark.parametrize("trouble, calls, words", [
    ("5xx", 3, "HTTP 503, 3 attempts"),
    ("4xx", 1, "HTTP 404, 1 attempt"),
    ("slow", 3, "timed out after 1s, 3 attempts"),
])
def test_a_failing_webhook_is_retried_when_it_may_pass_and_shouted(
        bot: Harness, flags: FlagServer, trouble: str, calls: int, words: str) -> None:
    flags.status = {"5xx": 503, "4xx": 404, "slow": 200}[trouble]
    flags.delay = 2.0 if trouble == "slow" else 0.0
    slash(bot, "/rollout", "start")
    assert fire_webhooks(bot) == 1
    assert len(flags.calls) == calls
    assert len({c.headers["Idempotency-Key"] for c in flags.calls}) == 1
    [shout] = [t for t in texts(bot) if "*The rollout webhook FAILED*" in t]
    assert words in shout and "<@U0ENG> set it by hand" in shout
    assert phases(bot)[0].webhook_status.startswith("failed: ")
    assert fire_webhooks(bot) == 0


@pytest.mark.rollout_config(url="down")
def test_the_webhook_down(bot: Harness) -> None:
    slash(bot, "/rollout", "start")
    fire_webhooks(bot)
    [shout] = [t for t in texts(bot) if "*The rollout webhook FAILED*" in t]
    assert "ConnectError: could not reach the flag service, 2 attempts" in shout


@pytest.mark.rollout_config(url=None)
def test_without_a_webhook_the_flag_is_set_by_hand(bot: Harness) -> None:
    assert "no rollout webhook is configured" in slash(bot, "/rollout", "start")
    bot.deliver()
    assert any("No rollout webhook is configured: <@U0ENG> set the flag to 5% by hand." in t for t in texts(bot))


@pytest.mark.parametrize("change, error", [
    (lambda c: c["rollout"]["phases"][0]["gates"].append("p99_ms < 3000"),
     "rollout.phases[0].gates[2]: 'p99_ms < 3000' names 'p99_ms', which is not a source under metrics.sources"),
    (lambda c: c["rollout"]["rollback_when"][0].update(when="error_rate >> 1"),
     "rollout.rollback_when[0].when: 'error_rate >> 1' is not a condition like 'error_rate < 0.01'"),
    (lambda c: c["rollout"]["phases"][1].pop("percent"), "rollout.phases[1].percent: is required"),
    (lambda c: c["rollout"]["phases"][1].update(percent=150), "rollout.phases[1].percent: 150 is not a percent"),
    (lambda c: c["rollout"]["rollback_when"][1].update(action="panic"),
     "rollout.rollback_when[1].action: 'panic' is not propose or rollback"),
    (lambda c: c["rollout"]["rollback_when"][1].pop("for"), "rollout.rollback_when[1].for: is required"),
    (lambda c: c["metrics"]["sources"][1].pop("json_path"), "metrics.sources[1]: a url source needs its json_path"),
    (lambda c: c["metrics"]["sources"][0].update(name="error rate"), "metrics.sources[0].name: 'error rate' is not a name"),
    (lambda c: c["metrics"].update(every="1s"), "metrics.every: '1s' is shorter than 5s"),
    (lambda c: c["rollout"]["phases"][0]["gates"].append("error_rate < nan"), "is not a condition"),
])
def test_check_config_words_each_bad_expression_with_its_key_path(change: Any, error: str) -> None:
    raw = rollout_config("http://127.0.0.1:9090", "http://127.0.0.1:9/flags")
    raw = {**raw, "rollout": {**raw["rollout"], "phases": [dict(p, gates=list(p.get("gates", ())))
                                                             for p in raw["rollout"]["phases"]],
                              "rollback_when": [dict(t) for t in raw["rollout"]["rollback_when"]]},
           "metrics": {**raw["metrics"], "sources": [dict(s) for s in raw["metrics"]["sources"]]}}
    change(raw)
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert any(e.startswith(error) or error in e for e in caught.value.errors), caught.value.errors


def test_a_trigger_seen_by_two_replicas_fires_once(
        bot: Harness, source: MetricsServer, standin: Any, database_url: str, config: Config) -> None:
    other = Harness(standin, database_url, config, bot.clock)
    try:
        replicas = [bot, other]
        source.values[ERRORS] = 0.6
        with ThreadPoolExecutor(max_workers=2) as pool:
            for _ in range(13):
                list(pool.map(lambda h: h.runtime.scheduler.metrics.run_once(), replicas))
                for h in replicas:
                    h.runtime.scheduler.metrics.forget_schedule()
                bot.clock.advance(timedelta(minutes=1))
        bot.deliver()
        other.deliver()
        assert len(broadcasts(bot, WAR_ROOM)) == 1 and len(broadcasts(bot, OPERATORS)) == 1
        with bot.session() as s:
            assert len(s.exec(select(TriggerFiring)).all()) == 2  # the propose one (at 4m), then the rollback one
            assert len(s.exec(select(Rollback)).all()) == 1
            per_minute = s.exec(select(MetricReading).where(MetricReading.source == "error_rate")).all()
        assert len(per_minute) == 13  # one reading a minute, whichever replica took it
        assert len(decisions(bot, "rollback")) == 1
    finally:
        other.close()


def test_two_replicas_recording_the_same_minute_fire_the_trigger_once(
        bot: Harness, source: MetricsServer, standin: Any, database_url: str, config: Config) -> None:
    """Both replicas store a reading that completes the window and check the triggers at the same moment:
    the launch lock makes them take turns, and the second finds the first one's firing."""
    from commands.metrics import Reading
    from commands.triggers import record_readings

    minutes(bot, source, 10, error_rate=0.6)  # 9 minutes of the 10m window
    other = Harness(standin, database_url, config, bot.clock)
    try:
        bot.clock.advance(timedelta(minutes=1))
        now = bot.clock.now()

        def record(h: Harness) -> int:
            return len(h.runtime.dispatcher.tick(lambda ctx: record_readings(ctx, [Reading("error_rate", now, 0.6)])))

        with ThreadPoolExecutor(max_workers=2) as pool:
            fired = list(pool.map(record, [bot, other]))
        assert sorted(fired) == [0, 1]
        bot.deliver()
        other.deliver()
        assert len(broadcasts(bot, WAR_ROOM)) == 1 and len(broadcasts(bot, OPERATORS)) == 1
        assert len(decisions(bot, "rollback")) == 1
    finally:
        other.close()


def test_check_config_on_the_command_line_prints_each_error_with_its_key_path(tmp_path: Any) -> None:
    import subprocess
    import sys

    import yaml

    raw = rollout_config("http://127.0.0.1:9090", "http://127.0.0.1:9/flags")
    raw["rollout"]["phases"][0]["gates"] = ["p99_ms < 3000"]
    raw["rollout"]["rollback_when"][0]["when"] = "error_rate >> 1"
    del raw["rollout"]["phases"][2]["percent"]
    raw["rollout"]["webhook"]["timeout"] = "1s"
    path = tmp_path / "warroom.yaml"
    path.write_text(yaml.safe_dump(raw))
    done = subprocess.run([sys.executable, "-m", "bot", "check-config", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "rollout.phases[0].gates[0]: 'p99_ms < 3000' names 'p99_ms'" in out
    assert "rollout.rollback_when[0].when: 'error_rate >> 1' is not a condition" in out
    assert "rollout.phases[2].percent: is required" in out


def test_app_home_shows_the_phase_and_the_next_one(bot: Harness, flags: FlagServer) -> None:
    from tests.test_home import home_opened, publishes, shown, valid

    home_opened(bot, ENG, event_id="EvRollout1")
    bot.deliver()
    assert "*Rollout*: not started · next: *pilot* at 5%" in shown(valid(publishes(bot, ENG)[-1]["view"]))
    slash(bot, "/rollout", "start")
    home_opened(bot, ENG, event_id="EvRollout2")
    bot.deliver()
    text = shown(valid(publishes(bot, ENG)[-1]["view"]))
    assert f"*Rollout*: phase *pilot* at 5% since {at('10:00')} · next: *half* at 50%" in text


def test_the_retrospective_shows_the_phases_each_metric_against_its_gates_and_the_triggers(
        bot: Harness, source: MetricsServer, flags: FlagServer) -> None:
    from commands.retro import retrospective
    from db.models import Launch

    slash(bot, "/rollout", "start")
    fire_webhooks(bot)
    minutes(bot, source, 2, error_rate=0.004)
    minutes(bot, source, 1, error_rate=None)  # a failed reading counts as failed, never as a number
    minutes(bot, source, 11, error_rate=0.6)  # the rollback trigger fires
    with bot.session() as s:
        launch = s.exec(select(Launch)).one()
        md = retrospective(s, launch, bot.config, bot.clock.now())
    section = md.split("## Rollout and metrics", 1)[1].split("\n## ", 1)[0]
    first = phases(bot)[0]
    row = next(line for line in section.splitlines() if line.startswith(f"| {first.phase} |"))
    assert f"| {first.percent:g}% |" in row and "| @U0COMMANDER (commander) |" in row
    assert row.endswith("| HTTP 200 |")  # what the flag service answered
    error_rate = next(line for line in section.splitlines() if line.startswith("| error_rate |"))
    assert error_rate.startswith("| error_rate | 14 | 1 | 0.004 | 0.6 | 0.6 |")
    # markdown's own characters escaped, as everywhere in the file
    assert r"gate error_rate \< 0.01 (pilot)" in error_rate and r"trigger error_rate \> 0.5 for 10m (rollback)" in error_rate
    assert "Rollback triggers that fired:" in section and r"T+13m error_rate \> 0.5 for 10m (rollback) (reading 0.6): rollback #1" in section
