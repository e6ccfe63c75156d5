"""The storm of issue 13: a launch breaks and the war room gets everything at once.

10 `/incident sev2` declarations, then for each incident 5 `/incident update` and one `/incident ack`,
all within about a second, into one war room; `python -m bot serve` (the real app over signed HTTP)
posts to the Slack stand-in with Slack's pace enforced (a second post to a channel within 0.9 s, or
a 51st chat.update within a minute, is answered 429). Printed: when every notification was visible
and when every message showed its final state (from the first declaration), the number of posts
and chat.update calls, then the wait of a sev1 declared behind the storm's backlog and of a rollback
confirmation behind that, both sent once the storm's notifications are visible (from each one's ack), and the wait of a notification whose first five tries
get 3×429 then 2×500 (from its ack). Every run is checked: every update's text once in its
incident's thread, every incident message in its final state, nothing pending, nothing twice.
`flood` (issue 18): with the default limits, 60 `/incident sev1` from one user at once, then the
commander's `/rollback` and its confirmation click: how long the confirmation and the broadcast took.

    python bench/storm.py                                   # SQLite
    python bench/storm.py --backends sqlite postgresql
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml
from common import BotProcess, bench_config, database, machine
from sqlalchemy import func
from sqlmodel import select

from db.models import MessageRef, OutboxMessage, Rollback
from db.session import make_engine, reading
from tests.processes import action_body, signed_post, slash_body
from tests.standin import SlackStandin

WAR_ROOM = "C0WARROOM"
INCIDENTS, UPDATES = 10, 5
NUMBER = re.compile(r"\(INC-(\d+)\)\s*$")


class Run:
    """One bot process against one stand-in and database."""

    def __init__(self, url: str, workdir: Path, label: str, *, limits: bool = False) -> None:
        self.standin = SlackStandin(enforce_pacing=True).start()
        self.engine = make_engine(url)
        config = bench_config(workdir / f"{label}.yaml")
        if limits:  # the default limits, as a launch has them
            config.write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(config.read_text()).items()
                                              if k != "limits"}))
        self.bot = BotProcess(database_url=url, api_url=self.standin.api_url, log_path=workdir / f"{label}.log",
                              config_path=config).start()
        self.http = httpx.Client()

    def close(self) -> None:
        self.http.close()
        self.bot.stop()
        self.standin.stop()
        self.engine.dispose()

    def slash(self, text: str, command: str = "/incident", user: str = "U0COMMANDER") -> float:
        """Send one command; the time its ack came back."""
        self.reply(text, command, user)
        return time.time()

    def reply(self, text: str, command: str = "/incident", user: str = "U0COMMANDER") -> str:
        """Send one command; its ephemeral reply."""
        r = signed_post(self.http, self.bot.url, slash_body(command, text, user=user))
        assert r.status_code == 200 and "sorry" not in r.text.lower(), r.text
        return str(r.json().get("text"))

    def click(self, action_id: str, value: str) -> float:
        """Press a button as the commander; the time its ack came back."""
        r = signed_post(self.http, self.bot.url, action_body(action_id, value))
        assert r.status_code == 200, r.text
        return time.time()

    def pending(self) -> int:
        with reading(self.engine) as s:
            return int(s.exec(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.status == "pending")).one())

    def wait_drained(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not self.pending(), f"{self.pending()} messages still pending after {timeout} s"

    def landed(self, match: Callable[[dict[str, Any]], bool], timeout: float = 300) -> float:
        """When the first post matching `match` landed (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in self.standin.calls_to("chat.postMessage"):
                if match(call.args):
                    return call.at
            time.sleep(0.02)
        raise AssertionError("the post never landed")


def storm(run: Run) -> tuple[float, float]:
    """The storm's commands: (when the first was sent, how long they all took to be acked)."""
    started = time.time()
    with ThreadPoolExecutor(INCIDENTS) as pool:
        list(pool.map(lambda i: run.slash(f"sev2 storm incident {i + 1}"), range(INCIDENTS)))

        def work(n: int) -> None:  # one incident's commands, in order: two updates, the ack, three more
            for k in range(1, UPDATES + 1):
                run.slash(f"update INC-{n} storm update {n}.{k}.")
                if k == 2:
                    run.slash(f"ack INC-{n}", user="U0ENG")

        list(pool.map(work, range(1, INCIDENTS + 1)))
    return started, time.time() - started


def check_storm(run: Run, started: float) -> dict[str, Any]:
    """Figures of the storm once everything is delivered, and the checks that nothing went wrong."""
    calls = [c for c in run.standin.calls if c.method in ("chat.postMessage", "chat.update")]
    ok = [c for c in calls if c.status == 200 and c.response.get("ok")]
    posts = [c for c in ok if c.method == "chat.postMessage"]
    notes = {int(m.group(1)): c for c in posts if (m := NUMBER.search(str(c.args.get("text"))))
             and not c.args.get("thread_ts") and str(c.args.get("text")).startswith("INCIDENT")
             and int(m.group(1)) <= INCIDENTS}
    assert sorted(notes) == list(range(1, INCIDENTS + 1)), sorted(notes)
    ts_of = {n: c.response["ts"] for n, c in notes.items()}
    # every update's text, and every ack, once, in its own incident's thread
    replies = [c for c in posts if c.args.get("thread_ts")]
    last_reply = 0.0
    for n, ts in ts_of.items():
        texts = [str(c.args.get("text")) for c in replies if c.args.get("thread_ts") == ts]
        for k in range(1, UPDATES + 1):
            assert sum(t.count(f"storm update {n}.{k}.") for t in texts) == 1, (n, k, texts)
        assert sum(t.count(f"INC-{n} acknowledged by") for t in texts) == 1, (n, texts)
        last_reply = max([last_reply] + [c.at for c in replies if c.args.get("thread_ts") == ts])
    # every incident message shows what the bot last meant it to show (its newest update row)
    with reading(run.engine) as s:
        finals = {ref.ts: ref.ref for ref in s.exec(select(MessageRef)).all()}
        newest = {}
        for row in s.exec(select(OutboxMessage).where(OutboxMessage.method == "chat.update").order_by(
                OutboxMessage.id)).all():
            newest[row.update_ref] = row.payload
        failed = s.exec(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "failed")).one()
    assert failed == 0, f"{failed} messages failed"
    final_at = 0.0
    for n, ts in ts_of.items():
        want = newest[finals[ts]]
        shown = run.standin.messages[WAR_ROOM]
        message = next(m for m in shown if m["ts"] == ts)
        assert message["text"] == want["text"] and message["blocks"] == want.get("blocks"), n
        assert "acknowledged" in str(message["blocks"]).lower(), n
        became = None  # when it became final for good
        for c in ok:
            if c.response.get("ts") == ts:  # its post, then each update of it
                same = c.args.get("text") == want["text"] and c.args.get("blocks") == want.get("blocks")
                became = (became or c.at) if same else None
        assert became is not None
        final_at = max(final_at, became)
    landed = [outbox_key(c.args) for c in posts]
    assert all(n == 1 for n in Counter(landed).values()), "a post landed twice"
    return {
        "notifications": max(c.at for c in notes.values()) - started,
        "final": max(final_at, last_reply) - started,
        "posts": len(posts), "updates": sum(1 for c in ok if c.method == "chat.update"),
        "429": sum(1 for c in calls if c.status == 429),
    }


def outbox_key(args: dict[str, Any]) -> Any:
    meta = args.get("metadata") or {}
    return (meta.get("event_payload") or {}).get("outbox_id") if isinstance(meta, dict) else None


def run_storm(url: str, workdir: Path, kind: str) -> None:
    run = Run(url, workdir, f"{kind}-storm")
    try:
        started, took = storm(run)
        run.wait_drained()
        f = check_storm(run, started)
        print(f"| {kind} · the storm (70 commands acked in {took:.2f} s) | {f['notifications']:.1f} s | "
              f"{f['final']:.1f} s | {f['posts']} | {f['updates']} | {f['429']} | checked |", flush=True)
    finally:
        run.close()


def run_behind(url: str, workdir: Path, kind: str) -> None:
    run = Run(url, workdir, f"{kind}-behind")
    try:
        storm(run)
        # once the storm's notifications are out, its routine backlog (replies, updates) is still queued
        for n in range(1, INCIDENTS + 1):
            run.landed(lambda a, n=n: str(a.get("text")).startswith("INCIDENT") and f"(INC-{n})" in str(a.get("text")))
        backlog = run.pending()
        sev1_acked = run.slash("sev1 behind the backlog")
        rollback_acked = run.slash("behind the backlog", command="/rollback")
        sev1 = run.landed(lambda a: "behind the backlog" in str(a.get("text")) and "INCIDENT" in str(a.get("text")))
        rollback = run.landed(lambda a: "Rollback requested" in str(a.get("text")))
        run.wait_drained()
        check_storm(run, 0.0)
        print(f"| {kind} · sev1 declared behind a backlog of {backlog} messages, then /rollback | sev1 visible {sev1 - sev1_acked:.1f} s "
              f"after its ack | rollback confirmation {rollback - rollback_acked:.1f} s after its ack | | | | checked |",
              flush=True)
    finally:
        run.close()


def run_flood(url: str, workdir: Path, kind: str) -> None:
    run = Run(url, workdir, f"{kind}-flood", limits=True)
    try:
        with ThreadPoolExecutor(10) as pool:
            replies = list(pool.map(lambda i: run.reply(f"sev1 flood {i + 1}", user="U0FLOOD"), range(60)))
        stored = sum("Declared INC-" in r for r in replies)
        limited = sum("try again in" in r for r in replies)
        assert stored == 10 and limited == 50, (stored, limited)
        asked = run.slash("the flood buried checkout", command="/rollback")
        queued = run.pending()
        confirmation = run.landed(lambda a: "Rollback requested" in str(a.get("text")))
        with reading(run.engine) as s:
            rollback = s.exec(select(Rollback)).one()
        clicked = run.click("rollback_confirm", str(rollback.id))
        broadcast = max(run.landed(lambda a, c=c: a.get("channel") == c and str(a.get("text")).startswith(
            "Rollback initiated at")) for c in (WAR_ROOM, "C0OPERATORS"))
        run.wait_drained()
        landed = [outbox_key(c.args) for c in run.standin.calls_to("chat.postMessage")
                  if c.status == 200 and c.response.get("ok")]
        assert all(n == 1 for n in Counter(landed).values()), "a post landed twice"
        print(f"| {kind} · 60 sev1s from one user ({stored} stored, {limited} told to try again), then /rollback "
              f"| confirmation {confirmation - asked:.1f} s after its ack ({queued} queued) | broadcast "
              f"{broadcast - clicked:.1f} s after the click | | | | checked |", flush=True)
    finally:
        run.close()


def run_faults(url: str, workdir: Path, kind: str) -> None:
    run = Run(url, workdir, f"{kind}-faults")
    try:
        run.standin.fail("chat.postMessage", status=429, retry_after=1, times=3)
        run.standin.fail("chat.postMessage", status=500, times=2)
        acked = run.slash("sev2 after three 429s and two 500s")
        landed = run.landed(lambda a: "three 429s" in str(a.get("text")))
        run.wait_drained()
        tries = len(run.standin.attempts("chat.postMessage"))
        once = sum("three 429s" in str(p.get("text")) for p in run.standin.posts())
        assert once == 1, f"posted {once} times"
        print(f"| {kind} · one notification, its tries answered 3×429 then 2×500 | visible {landed - acked:.1f} s "
              f"after its ack | {tries} tries | | | | posted once |", flush=True)
    finally:
        run.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite"])
    parser.add_argument("--only", nargs="+", default=["storm", "behind", "flood", "faults"])
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"command: python bench/storm.py {' '.join(sys.argv[1:])}".rstrip())
    print("| run | every notification visible | every message final | posts | chat.update | 429s | check |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    runs = {"storm": run_storm, "behind": run_behind, "flood": run_flood, "faults": run_faults}
    with tempfile.TemporaryDirectory(prefix="warroom-storm-") as tmp:
        for kind in args.backends:
            for name in args.only:
                with database(kind, Path(tmp)) as url:
                    runs[name](url, Path(tmp), kind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
