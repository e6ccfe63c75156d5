"""The shape of the house (ARCHITECTURE.md, rule 1): the launch rules and the database below the edge
import nothing of the edge, of Slack's libraries or of HTTP."""

from __future__ import annotations

import ast

from tests.processes import ROOT

FORBIDDEN = ("bot", "slack_bolt", "slack_sdk", "httpx")


def edge_imports(source: str) -> list[str]:
    """Every module named by an import statement (anywhere: in functions too) that belongs to the edge."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        found += [name for name in names if name.split(".")[0] in FORBIDDEN]
    return found


def test_commands_and_db_import_nothing_of_the_edge() -> None:
    offenders = {str(path.relative_to(ROOT)): edge_imports(path.read_text(encoding="utf-8"))
                 for folder in ("commands", "db") for path in sorted((ROOT / folder).rglob("*.py"))}
    assert {path: names for path, names in offenders.items() if names} == {}
    assert len(offenders) > 10  # the rule looked at the real folders


def test_the_rule_catches_every_form_of_import() -> None:
    assert edge_imports("from bot.config import Env") == ["bot.config"]
    assert edge_imports("import slack_sdk.models") == ["slack_sdk.models"]
    assert edge_imports("def f():\n    import httpx\n") == ["httpx"]
    assert edge_imports("from slack_bolt import App") == ["slack_bolt"]
    assert edge_imports("from commands.config import Config\nimport botany\nfrom . import bot") == []
