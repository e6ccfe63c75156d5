"""manifest.yml holds to Slack's app manifest schema (the fields and limits of Slack's documented manifest:
display_information, features.shortcuts / slash_commands, oauth_config.scopes.bot, settings), and asks for
what warroom uses: every slash command, the declare_incident shortcut, the events and the scopes."""

from __future__ import annotations

from typing import Any

import yaml

from commands.registry import SLASH
from tests.processes import ROOT

TOP = {"_metadata", "display_information", "features", "oauth_config", "settings", "functions"}
FEATURES = {"app_home", "bot_user", "shortcuts", "slash_commands", "unfurl_domains"}
SHORTCUT = {"type", "name", "callback_id", "description"}
SLASH_KEYS = {"command", "description", "should_escape", "url", "usage_hint"}
SETTINGS = {"allowed_ip_address_ranges", "event_subscriptions", "incoming_webhooks", "interactivity",
            "org_deploy_enabled", "socket_mode_enabled", "token_rotation_enabled", "function_runtime"}
# Slack's granular bot scopes that warroom could ask for (docs.slack.dev/reference/scopes?token_types=Bot)
BOT_SCOPES = {"chat:write", "chat:write.public", "channels:join", "channels:history", "channels:manage",
              "channels:read", "channels:write.invites", "commands", "files:write", "files:read", "groups:history",
              "groups:read", "groups:write", "groups:write.invites", "reactions:read", "pins:read", "users:read"}


def manifest() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))


def test_the_manifest_has_only_fields_of_slacks_schema_within_their_limits() -> None:
    m = manifest()
    assert set(m) <= TOP and "display_information" in m
    assert len(m["display_information"]["name"]) <= 35 and len(m["display_information"]["description"]) <= 140
    assert set(m["features"]) <= FEATURES
    for shortcut in m["features"]["shortcuts"]:
        assert set(shortcut) == SHORTCUT and shortcut["type"] in ("global", "message")
        assert len(shortcut["callback_id"]) <= 255 and len(shortcut["description"]) <= 150
    assert len(m["features"]["shortcuts"]) <= 10
    for command in m["features"]["slash_commands"]:
        assert set(command) <= SLASH_KEYS and {"command", "description"} <= set(command)
        assert command["command"].startswith("/") and len(command["command"]) <= 32
        assert len(command.get("usage_hint", "")) <= 1000
    assert set(m["oauth_config"]) <= {"redirect_urls", "scopes", "token_management_enabled"}
    assert set(m["oauth_config"]["scopes"]) <= {"bot", "user"}
    assert set(m["oauth_config"]["scopes"]["bot"]) <= BOT_SCOPES
    assert set(m["settings"]) <= SETTINGS
    assert set(m["settings"]["event_subscriptions"]) <= {"bot_events", "user_events", "request_url"}
    assert set(m["settings"]["interactivity"]) <= {"is_enabled", "message_menu_options_url", "request_url"}


def test_the_manifest_asks_for_what_warroom_uses() -> None:
    m = manifest()
    assert {c["command"] for c in m["features"]["slash_commands"]} == set(SLASH)
    assert {"type": "message", "callback_id": "declare_incident"}.items() <= m["features"]["shortcuts"][0].items()
    assert {"message.channels", "reaction_added"} <= set(m["settings"]["event_subscriptions"]["bot_events"])
    # incident channels (create, invite, archive; the lookup), pins (reactions, the message's text)
    assert {"channels:manage", "channels:read", "reactions:read", "channels:history", "groups:history",
            "commands"} <= set(m["oauth_config"]["scopes"]["bot"])
