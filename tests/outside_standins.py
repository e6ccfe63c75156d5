"""Stand-ins on 127.0.0.1 for PagerDuty's Events API v2 and Atlassian Statuspage's API, each answering as
the documented API does and failing on demand (`fail_next`)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, Any]]


class Standin:
    """A JSON-over-HTTP server that records every request; `answer` is the service's own logic."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failures: list[Answer] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                call = {"method": self.command, "path": self.path, "json": body, "headers": dict(self.headers)}
                with standin._lock:
                    standin.calls.append(call)
                    status, answer = standin.failures.pop(0) if standin.failures else standin.answer(call)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_PATCH = do_POST  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, status: int, body: dict[str, Any] | None = None, *, times: int = 1) -> None:
        with self._lock:
            self.failures += [(status, body or {})] * times

    def answer(self, call: dict[str, Any]) -> Answer:
        raise NotImplementedError

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_THROTTLED = {"status": "throttle event", "message": "Requests for this service are arriving too quickly. Please retry later."}


class PagerDutyStandin(Standin):
    """POST /v2/enqueue: 202 `{"status": "success", "message": "Event processed", "dedup_key": …}`, or 400 with
    PagerDuty's `errors` for an event it refuses (a routing key that is not 32 characters among them)."""

    def __init__(self, routing_key: str) -> None:
        self.routing_key = routing_key
        super().__init__()

    @property
    def url(self) -> str:
        return f"{self.base}/v2/enqueue"

    def answer(self, call: dict[str, Any]) -> Answer:
        event = call["json"] or {}
        errors = []
        if call["path"] != "/v2/enqueue":
            return 404, {"status": "not found"}
        if len(str(event.get("routing_key", ""))) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        if event.get("event_action") not in PD_ACTIONS:
            errors.append("'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')")
        if event.get("event_action") == "trigger":
            payload = event.get("payload") or {}
            if not payload.get("summary") or not payload.get("source"):
                errors.append("'payload.summary' and 'payload.source' are required")
            if payload.get("severity") not in PD_SEVERITIES:
                errors.append("'payload.severity' is invalid")
        elif not event.get("dedup_key"):
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        return 202, {"status": "success", "message": "Event processed",
                     "dedup_key": event.get("dedup_key") or uuid.uuid4().hex}

    def events(self) -> list[dict[str, Any]]:
        return [c["json"] for c in self.calls]


class StatuspageStandin(Standin):
    """POST /v1/pages/<page_id>/incidents creates (201, the incident's JSON), PATCH …/incidents/<id> updates
    (200); a missing or wrong `Authorization: OAuth <key>` gets 401 `{"error": "Could not authenticate"}`."""

    def __init__(self, page_id: str, api_key: str) -> None:
        self.page_id, self.api_key = page_id, api_key
        self.incidents: dict[str, dict[str, Any]] = {}
        super().__init__()

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    def answer(self, call: dict[str, Any]) -> Answer:
        if call["headers"].get("Authorization") != f"OAuth {self.api_key}":
            return 401, {"error": "Could not authenticate"}
        match = re.fullmatch(rf"/v1/pages/{self.page_id}/incidents(?:/([a-z0-9]+))?", call["path"])
        fields = (call["json"] or {}).get("incident") if isinstance(call["json"], dict) else None
        if match is None or not isinstance(fields, dict):
            return 404, {"error": "Not found"}
        incident_id = match.group(1)
        make: Callable[[], str] = lambda: uuid.uuid4().hex[:12]  # noqa: E731
        if call["method"] == "POST" and incident_id is None:
            if not fields.get("name"):
                return 422, {"error": "Name can't be blank"}
            incident_id = make()
            self.incidents[incident_id] = {"id": incident_id, "page_id": self.page_id, "name": fields["name"],
                                           "shortlink": f"https://stspg.io/{incident_id[:5]}", "incident_updates": []}
            status = 201
        elif call["method"] == "PATCH" and incident_id in self.incidents:
            status = 200
        else:
            return 404, {"error": "Not found"}
        incident = self.incidents[incident_id]
        incident["status"] = fields.get("status")
        incident["incident_updates"].insert(0, {"id": make(), "status": fields.get("status"),
                                                "body": fields.get("body"), "incident_id": incident_id})
        return status, incident
