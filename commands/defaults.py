"""The built-in defaults, taken from the launch playbooks (shared/seeds/000 and 001).

Every config key is optional; what a config leaves out comes from here. With no
config file at all, DEFAULT_YAML names placeholder people and channels so every
command works at once (the shell).
"""

from __future__ import annotations

from typing import Any

NEXT_CHECKPOINT = "next_checkpoint"

DEFAULT_GONOGO_CRITERIA = (  # seed 001, Go/No-Go Checklist
    "T-24h readiness review done; all blocking issues resolved",
    "Non-critical deployments frozen; only emergency fixes allowed",
    "Production dry run validated the workflows",
    "Rollback plan reviewed; backups and snapshots up to date",
    "Customer communications (email, docs, in-app banners) prepared",
)
DEFAULT_CONTINGENCIES = (  # seed 000 §7
    ("Shopify Admin outage", "Switch monitoring to queued mode; pause approvals; notify operators of delay.", "devops", "Use Shopify status page for updates."),
    ("Supabase latency spike", "Reduce polling frequency, monitor long-running queries, escalate to Data team.", "eng_oncall", "Capture query IDs for triage."),
    ("Chatwoot API failure", "Route CX tickets to email fallback; log public notice for customers if >30m.", "cx", "Reference Chatwoot health runbook."),
    ("Metrics desync", "Cross-check GA/GtmHub; if mismatch >10%, freeze dashboard tiles and issue alert.", "analytics", "Provide manual report in standup."),
    ("Operator confusion", "Deploy training snippet, host live Zoom walkthrough, gather feedback for UX improvements.", "commander", "Schedule follow-up session."),
)
DEFAULT_RUN_OF_SHOW = (  # seed 000 §3
    ("T-24h", "Dry run in staging, confirm feature flags, verify incident log template, final user-testing sign-off."),
    ("T-12h", "Lock code changes (freeze), archive evidence, confirm data snapshots."),
    ("T-2h", "Pre-flight checklist call: verify on-call lineup, monitoring dashboards, alert thresholds."),
    ("T-30m", "Warm staging and production sessions, run smoke tests."),
    ("T+15m", "Verify metrics (latency, error rates), confirm operators logged in, address immediate questions."),
    ("T+1h", "First business checkpoint: summarize incidents and adoption metrics (/checkpoint)."),
    ("T+4h", "Secondary checkpoint: decide on widening access or rollback (/checkpoint)."),
    ("T+24h", "Post-launch retrospective scheduling and final metrics report (/export md)."),
)
DEFAULT_ROLLBACK_STEPS = (  # seed 000 §6 procedure
    "Launch commander calls for rollback; exec informed",
    "Engineering disables the production feature flag",
    "DevOps runs the verified rollback script",
    "Support notifies operators to resume legacy tools",
    "Scribe documents the timeline; post-incident review within 24 hours",
)
DEFAULT_ANNOUNCEMENT = (
    "{name} is now live in production. Please begin using it for daily operations. "
    "Report issues in the war room. Operators: follow the approvals HITL flow; all changes require acknowledgment."
)


DEFAULT_YAML: dict[str, Any] = {
    "launch": {"name": "HotDash Control Center", "timezone": "UTC"},
    "channels": {"war_room": "C0WARROOM", "broadcast": ["C0OPERATORS"]},
    "roles": {
        "commander": "U0COMMANDER", "scribe": "U0SCRIBE", "eng_oncall": "U0ENG",
        "devops": "U0DEVOPS", "cx": "U0CX", "exec": "U0EXEC",
    },
    "readiness": [  # seed 002's evidence gates, owned by the placeholder roles
        {"id": "qa-evidence", "text": "QA evidence: ?mock=0 sustained HTTP 200, synthetic check < 300 ms",
         "owner": "eng_oncall", "due": "T-48h", "critical": True},
        {"id": "embed-token", "text": "Shopify embed token delivered", "owner": "devops", "due": "T-24h",
         "critical": True},
        {"id": "facilitators", "text": "Facilitators confirmed", "owner": "cx", "due": "T-72h"},
    ],
}
# the follow-up the shell opens on the built-in config's first run, so a newcomer sees an action item (seed 002)
FIRST_FOLLOW_UP = ("Stakeholder summary: success metrics, action items with owners and due dates "
                   "| owner: scribe | due: T+24h")
DEFAULT_SEVERITIES: dict[str, dict[str, Any]] = {
    "sev1": {"name": "Critical", "ack_within": "5m", "escalate_to": ["commander", "eng_oncall", "exec"], "update_every": "15m"},
    "sev2": {"name": "High", "ack_within": "15m", "escalate_to": ["commander", "eng_oncall"], "update_every": "30m"},
    "sev3": {"name": "Medium", "ack_within": NEXT_CHECKPOINT, "escalate_to": ["commander"], "update_every": "1h"},
    "sev4": {"name": "Low", "escalate_to": [], "update_every": "4h"},
}
