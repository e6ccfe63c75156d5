"""The rehearsal's short rollout, for a config that has none: a local JSON metric source whose error
rate the script moves, three phases after seed 003 and a `propose` trigger at seed 000's thresholds."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from commands.config import Config
from commands.config_rollout import Metrics, Rollout

GOOD_ERROR_RATE = 0.004


def serve_json(document: Callable[[], dict[str, Any]], name: str) -> ThreadingHTTPServer:
    """A local HTTP server answering every GET with `document()` as JSON (the rehearsal's stand-in sites)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps(document()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name=name).start()
    return server


class DemoMetrics:
    """`GET /metrics.json` answers {"error_rate": <value>}; `error_rate` is set by the rehearsal's script."""

    def __init__(self) -> None:
        self.error_rate = GOOD_ERROR_RATE
        self.server = serve_json(lambda: {"error_rate": self.error_rate}, "rehearsal-metrics")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/metrics.json"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def with_demo_rollout(config: Config) -> tuple[Config, DemoMetrics | None]:
    """The config as it is when it has a rollout; else with the demo source and phases (and the server)."""
    if config.rollout.phases:
        return config, None
    demo = DemoMetrics()
    metrics = Metrics.model_validate({"every": "2m", "sources": [  # 2m: light on a fast rehearsal clock
        {"name": "error_rate", "url": demo.url, "json_path": "error_rate", "timeout": "2s"}]})
    rollout = Rollout.model_validate({
        "phases": [{"name": "pilot", "percent": 5, "hold_for": "20m", "gates": ["error_rate < 0.01"]},
                   {"name": "half", "percent": 50, "hold_for": "1h", "gates": ["error_rate < 0.01"]},
                   {"name": "GA", "percent": 100}],
        "rollback_when": [{"when": "error_rate > 0.2", "for": "4m", "action": "propose"}]})
    return config.model_copy(update={"metrics": metrics, "rollout": rollout}), demo
