"""Where each command family registers its slash commands, buttons and modals.

The edges (Slack, the shell, the rehearsal) look handlers up here; a family
module only decorates its functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import SQLModel

from commands.context import Context, Result
from db.models import Timer

SlashHandler = Callable[[Context, str], Result]
ActionHandler = Callable[[Context, str], Result]
ViewHandler = Callable[[Context, dict[str, str]], Result]


@dataclass(frozen=True)
class SlashCommand:
    name: str
    handler: SlashHandler
    usage: str
    summary: str


SLASH: dict[str, SlashCommand] = {}
ACTIONS: dict[str, ActionHandler] = {}
VIEWS: dict[str, ViewHandler] = {}


def slash(name: str, *, usage: str, summary: str) -> Callable[[SlashHandler], SlashHandler]:
    def register(fn: SlashHandler) -> SlashHandler:
        SLASH[name] = SlashCommand(name, fn, usage, summary)
        return fn

    return register


def action(action_id: str) -> Callable[[ActionHandler], ActionHandler]:
    def register(fn: ActionHandler) -> ActionHandler:
        ACTIONS[action_id] = fn
        return fn

    return register


def action_handler(action_id: str) -> ActionHandler | None:
    """The handler of a button: `checkpoint_decision:widen` is `checkpoint_decision`'s (one block may
    hold several choices, and Slack wants each button's action_id unique within its block)."""
    return ACTIONS.get(action_id) or ACTIONS.get(action_id.split(":", 1)[0])


def view(callback_id: str) -> Callable[[ViewHandler], ViewHandler]:
    def register(fn: ViewHandler) -> ViewHandler:
        VIEWS[callback_id] = fn
        return fn

    return register


TimerHandler = Callable[[Context, Timer], None]
TIMERS: dict[str, TimerHandler] = {}
# kind -> the model whose row a timer's subject_id names (an escalation's incident). The scheduler loads
# and locks (FOR UPDATE) the subjects of the timers it runs together, in one query, before their
# handlers run: a handler reads its subject with session.get, from the session, already locked.
TIMER_SUBJECTS: dict[str, type[SQLModel]] = {}


def timer(kind: str, *, subject: type[SQLModel] | None = None) -> Callable[[TimerHandler], TimerHandler]:
    """Register the due work for a kind of Timer row (escalation, heartbeat, mark, probe, …)."""

    def register(fn: TimerHandler) -> TimerHandler:
        TIMERS[kind] = fn
        if subject is not None:
            TIMER_SUBJECTS[kind] = subject
        return fn

    return register
