"""Issue 12: `gunicorn -k gthread -w 2 --threads 4 bot.wsgi:app` boots on a fresh SQLite file.

Two workers load the app at once and both open the same new file: switching it to WAL from both at
the same moment failed one worker with "database is locked", and gunicorn shut down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.harness import SECRET, TOKEN
from tests.http_standin import free_port
from tests.processes import ROOT
from tests.standin import SlackStandin

pytestmark = pytest.mark.process
BOOTS = 10
WORKERS = 2

# The workers load the app in step, as on an idle machine: left alone on this busy one, their first
# connections came 0.1-1 s apart (imports), in step 1-30 ms. Each says when it has loaded bot.wsgi:app.
HOOKS = '''
import os, time

def post_fork(server, worker):
    import bot.wsgi, alembic.command  # noqa: F401  (everything but the app itself: that is built on first use)
    barrier = os.environ["BOOT_BARRIER"]
    open(os.path.join(barrier, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 10
    while len(os.listdir(barrier)) < server.num_workers and time.monotonic() < deadline:
        time.sleep(0.001)

def post_worker_init(worker):
    worker.log.info("warroom loaded in worker %s", worker.pid)
'''


def boot(tmp_path: Path, n: int, api_url: str) -> tuple[int, str]:
    """One gunicorn on a fresh file: (the /healthz status once both workers have loaded, stderr)."""
    port = free_port()
    hooks = tmp_path / "hooks.py"
    hooks.write_text(HOOKS)
    stderr_path = tmp_path / f"gunicorn-{n}.log"
    barrier = tmp_path / f"barrier-{n}"
    barrier.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_", "DATABASE_URL"))}
    env.update({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": api_url,
                "DATABASE_URL": f"sqlite:///{tmp_path / f'fresh-{n}.db'}", "WARROOM_SLACK_TIMEOUT": "1",
                "PYTHONPATH": str(ROOT), "BOOT_BARRIER": str(barrier)})
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", str(WORKERS), "--threads", "4",
             "-b", f"127.0.0.1:{port}", "-c", str(hooks), "--no-control-socket", "bot.wsgi:app"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        status = 0
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None:
                if stderr_path.read_text(errors="replace").count("warroom loaded in worker") >= WORKERS:
                    try:
                        status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
                    except httpx.HTTPError:
                        status = 0
                    if status == 200:
                        break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # gunicorn's quick shutdown: the boot is what is tested
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    return status, stderr_path.read_text(errors="replace")


def test_two_workers_boot_on_ten_fresh_sqlite_files(standin: SlackStandin, tmp_path: Path) -> None:
    for n in range(BOOTS):
        status, stderr = boot(tmp_path, n, standin.api_url)
        assert "Worker failed to boot" not in stderr and "database is locked" not in stderr, \
            f"boot {n + 1} of {BOOTS}:\n{stderr[-3000:]}"
        assert status == 200, f"boot {n + 1} of {BOOTS}: /healthz never answered 200:\n{stderr[-3000:]}"
