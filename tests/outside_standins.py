"""Stand-ins on 127.0.0.1 for PagerDuty's Events API v2 and Atlassian Statuspage's API, each answering as
the documented API does and failing on demand (`answer_next`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from tests.http_standin import HttpStandin, Reply, Request

PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_THROTTLED = {"status": "throttle event", "message": "Requests for this service are arriving too quickly. Please retry later."}


class PagerDutyStandin(HttpStandin):
    """POST /v2/enqueue: 202 `{"status": "success", "message": "Event processed", "dedup_key": …}`, or 400 with
    PagerDuty's `errors` for an event it refuses (a routing key that is not 32 characters among them)."""

    def __init__(self, routing_key: str) -> None:
        self.routing_key = routing_key
        super().__init__()

    @property
    def url(self) -> str:
        return f"{self.base_url}/v2/enqueue"

    def answer(self, call: Request) -> Reply:
        event = call.json or {}
        errors = []
        if call.path != "/v2/enqueue":
            return Reply(404, {"status": "not found"})
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
            return Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
        return Reply(202, {"status": "success", "message": "Event processed",
                           "dedup_key": event.get("dedup_key") or uuid.uuid4().hex})

    def events(self) -> list[dict[str, Any]]:
        return [c.json for c in self.calls]


class StatuspageStandin(HttpStandin):
    """POST /v1/pages/<page_id>/incidents creates (201, the incident's JSON), PATCH …/incidents/<id> updates
    (200), GET …/incidents/unresolved lists the incidents not resolved; a missing or wrong
    `Authorization: OAuth <key>` gets 401 `{"error": "Could not authenticate"}`. `create_delay`: a create
    lands at once but is answered that many seconds later (past the client's timeout: its answer is lost)."""

    def __init__(self, page_id: str, api_key: str) -> None:
        self.page_id, self.api_key = page_id, api_key
        self.incidents: dict[str, dict[str, Any]] = {}
        self.create_delay = 0.0
        super().__init__()

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1"

    def answer(self, call: Request) -> Reply:
        if call.header("Authorization") != f"OAuth {self.api_key}":
            return Reply(401, {"error": "Could not authenticate"})
        if call.method == "GET" and call.path == f"/v1/pages/{self.page_id}/incidents/unresolved":
            return Reply(200, [i for i in self.incidents.values() if i["status"] != "resolved"])
        match = re.fullmatch(rf"/v1/pages/{self.page_id}/incidents(?:/([a-z0-9]+))?", call.path)
        fields = (call.json or {}).get("incident") if isinstance(call.json, dict) else None
        if match is None or not isinstance(fields, dict):
            return Reply(404, {"error": "Not found"})
        incident_id = match.group(1)
        make: Callable[[], str] = lambda: uuid.uuid4().hex[:12]  # noqa: E731
        if call.method == "POST" and incident_id is None:
            if not fields.get("name"):
                return Reply(422, {"error": "Name can't be blank"})
            incident_id = make()
            self.incidents[incident_id] = {"id": incident_id, "page_id": self.page_id, "name": fields["name"],
                                           "shortlink": f"https://stspg.io/{incident_id[:5]}", "incident_updates": [],
                                           "created_at": f"2025-10-16T17:{len(self.incidents):02d}:00.000Z"}
            status = 201
        elif call.method == "PATCH" and incident_id in self.incidents:
            status = 200
        else:
            return Reply(404, {"error": "Not found"})
        incident = self.incidents[incident_id]
        incident["status"] = fields.get("status")
        incident["incident_updates"].insert(0, {"id": make(), "status": fields.get("status"),
                                                "body": fields.get("body"), "incident_id": incident_id})
        return Reply(status, incident, delay=self.create_delay if status == 201 else 0.0)
