"""A metrics source stand-in on 127.0.0.1: a JSON document (`/metrics.json`) and Prometheus's instant-query
API in its documented format (`/api/v1/query`), with values the test sets, or failing on demand."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class MetricsServer:
    def __init__(self) -> None:
        self.values: dict[str, float | None] = {}  # a query's (or a JSON path's last key's) value; None: no data
        self.status = 200
        self.queries: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if server.status != 200:
                    return self._send(server.status, b"<html>upstream trouble</html>", "text/html")
                if url.path == "/api/v1/query":
                    query = parse_qs(url.query).get("query", [""])[0]
                    with server._lock:
                        server.queries.append(query)
                        value = server.values.get(query)
                    result = [] if value is None else [{"metric": {}, "value": [1760634000.0, repr(float(value))]}]
                    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
                elif url.path == "/metrics.json":
                    body = {"latency": {"p95_ms": server.values.get("p95_ms")}, "ok": True}
                else:
                    return self._send(404, b"{}", "application/json")
                self._send(200, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
