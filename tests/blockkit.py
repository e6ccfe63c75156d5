"""Slack's Block Kit rules, as the stand-in applies them to every message and view it receives.

`check(method, args)` answers what Slack would: None for a payload it accepts, else its error code
(`invalid_blocks`, `msg_too_long`, `msg_blocks_too_long`) and the reasons, each with a JSON pointer
like Slack's own (`action_id already exists [json-pointer:/blocks/1/elements/1/action_id]`).
The rules are Slack's documented ones (shared/FIELD-NOTES.md), then slack_sdk's models on top:
slack_sdk checks field lengths and required fields, not the uniqueness of ids. Its `validate_json()`
checks one object's own fields only (an actions block, not its buttons), so every object is walked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100  # modals and App Home
TEXT_OBJECT = 3000
HEADER_TEXT = 150
ACTIONS_ELEMENTS = 25
MESSAGE_TEXT = 40_000  # chat.postMessage's `text`: over this, msg_too_long
BLOCKS_TOTAL_TEXT = 13_000  # the text of all a message's blocks: over about this, msg_blocks_too_long
VIEW_METHODS = frozenset({"views.open", "views.publish", "views.update", "views.push"})
MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral", "chat.scheduleMessage",
                             "response_url"})


@dataclass(frozen=True)
class Verdict:
    error: str
    reasons: tuple[str, ...]

    def response(self) -> dict[str, Any]:
        """Slack's answer: HTTP 200 with ok false, the reasons in `errors` and response_metadata."""
        return {"ok": False, "error": self.error, "errors": list(self.reasons),
                "response_metadata": {"messages": [f"[ERROR] {r}" for r in self.reasons]}}


def check(method: str, args: dict[str, Any]) -> Verdict | None:
    """What Slack answers to this payload: None when it would accept it."""
    if method in VIEW_METHODS:
        return check_view(args.get("view"))
    if method in MESSAGE_METHODS:
        return check_message(args)
    return None


def check_message(args: dict[str, Any]) -> Verdict | None:
    text = args.get("text")
    if isinstance(text, str) and len(text) > MESSAGE_TEXT:
        return Verdict("msg_too_long", (f"text is {len(text)} characters, more than {MESSAGE_TEXT}",))
    blocks = args.get("blocks")
    if blocks is None:
        return None
    if not isinstance(blocks, list):
        return Verdict("invalid_blocks_format", ("blocks must be an array of blocks [json-pointer:/blocks]",))
    reasons = list(_blocks(blocks, MESSAGE_BLOCKS, "/blocks"))
    if reasons:
        return Verdict("invalid_blocks", tuple(reasons))
    total = sum(len(t) for t in _texts(blocks))
    if total > BLOCKS_TOTAL_TEXT:
        return Verdict("msg_blocks_too_long", (f"the blocks hold {total} characters of text",))
    return None


def check_view(view: Any) -> Verdict | None:
    if not isinstance(view, dict):
        return Verdict("invalid_arguments", ("view must be an object [json-pointer:/view]",))
    reasons = list(_blocks(view.get("blocks"), VIEW_BLOCKS, "/view/blocks"))
    if not reasons:
        try:
            validate_deep(View(**view))
        except Exception as exc:  # slack_sdk raises SlackObjectFormationError, or TypeError on unknown keys
            reasons.append(f"{exc} [json-pointer:/view]")
    return Verdict("invalid_blocks", tuple(reasons)) if reasons else None


def _blocks(blocks: Any, most: int, at: str) -> Iterator[str]:
    if not isinstance(blocks, list):
        yield f"must be an array [json-pointer:{at}]"
        return
    if len(blocks) > most:
        yield f"must contain no more than {most} items [json-pointer:{at}]"
    seen_block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"{at}/{i}"
        if not isinstance(block, dict):
            yield f"must be an object [json-pointer:{where}]"
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str):
                yield f"must be a string [json-pointer:{where}/block_id]"
            elif block_id in seen_block_ids:
                yield f"block_id already exists [json-pointer:{where}/block_id]"
            else:
                seen_block_ids.add(block_id)
        yield from _block(block, where)


def _block(block: dict[str, Any], where: str) -> Iterator[str]:
    elements = block.get("elements")
    if block.get("type") == "actions" and isinstance(elements, list) and len(elements) > ACTIONS_ELEMENTS:
        yield f"must contain no more than {ACTIONS_ELEMENTS} items [json-pointer:{where}/elements]"
    seen_action_ids: set[str] = set()
    for path, element in _interactive(block):
        action_id = element.get("action_id")
        if action_id is None:
            continue
        if not isinstance(action_id, str):
            yield f"must be a string [json-pointer:{where}/{path}/action_id]"
        elif action_id in seen_action_ids:
            yield f"action_id already exists [json-pointer:{where}/{path}/action_id]"
        else:
            seen_action_ids.add(action_id)
    header = block.get("text") if block.get("type") == "header" else None
    if isinstance(header, dict) and len(str(header.get("text", ""))) > HEADER_TEXT:
        yield f"must be less than {HEADER_TEXT + 1} characters [json-pointer:{where}/text]"
    for path, text in _text_objects(block, ""):
        if len(text) > TEXT_OBJECT:
            yield f"must be less than {TEXT_OBJECT + 1} characters [json-pointer:{where}{path}/text]"
    try:
        parsed = Block.parse(block)
        if parsed is None:
            yield f"unknown block type {block.get('type')!r} [json-pointer:{where}/type]"
        else:
            validate_deep(parsed)
    except Exception as exc:  # a malformed block makes slack_sdk raise more than its own error type
        yield f"{exc} [json-pointer:{where}]"


def validate_deep(obj: JsonObject) -> None:
    """slack_sdk's validation of the object and of every model object inside it (buttons, texts, options)."""
    obj.validate_json()
    for name in sorted(obj.attributes):
        value = getattr(obj, name, None)
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, JsonObject):
                validate_deep(item)


def _interactive(block: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The block's elements that may carry an action_id, with their path inside the block."""
    if isinstance(block.get("elements"), list):
        for i, element in enumerate(block["elements"]):
            if isinstance(element, dict):
                yield f"elements/{i}", element
    for key in ("accessory", "element"):
        if isinstance(block.get(key), dict):
            yield key, block[key]


def _text_objects(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every text object (`{"type": "plain_text"|"mrkdwn", "text": …}`) below value, with its path."""
    if isinstance(value, dict):
        if value.get("type") in ("plain_text", "mrkdwn") and isinstance(value.get("text"), str):
            yield path, value["text"]
            return
        for key, item in value.items():
            yield from _text_objects(item, f"{path}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _text_objects(item, f"{path}/{i}")


def _texts(blocks: list[Any]) -> Iterator[str]:
    for _, text in _text_objects(blocks, ""):
        yield text
