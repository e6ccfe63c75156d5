"""A metrics source stand-in on 127.0.0.1: a JSON document (`/metrics.json`) and Prometheus's instant-query
API in its documented format (`/api/v1/query`), with values the test sets, or failing on demand."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from tests.http_standin import HttpStandin, Reply, Request


class MetricsServer(HttpStandin):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, float | None] = {}  # a query's (or a JSON path's last key's) value; None: no data
        self.status = 200

    @property
    def url(self) -> str:
        return self.base_url

    def answer(self, request: Request) -> Reply:
        url = urlparse(request.path)
        if self.status != 200:
            return Reply(self.status, "<html>upstream trouble</html>", content_type="text/html")
        if url.path == "/api/v1/query":
            value = self.values.get(parse_qs(url.query).get("query", [""])[0])
            result = [] if value is None else [{"metric": {}, "value": [1760634000.0, repr(float(value))]}]
            return Reply(200, {"status": "success", "data": {"resultType": "vector", "result": result}})
        if url.path == "/metrics.json":
            return Reply(200, {"latency": {"p95_ms": self.values.get("p95_ms")}, "ok": True})
        return Reply(404, {})
