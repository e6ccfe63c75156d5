"""The launch at a glance shows the gates before T0: App Home's `Readiness: <ready>/<all> ready` with every
critical gate not ready, the viewer's own open action items, and the board's readiness section."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.clock import ManualClock
from commands.config import Config
from commands.home import CHECK_EVERY
from tests.harness import Harness
from tests.standin import SlackStandin
from tests.test_board import BOARD_TOKEN, get
from tests.test_home import home_opened, publishes, shown, valid
from tests.test_readiness import QA, readiness_config


@pytest.fixture
def config() -> Config:
    return readiness_config()


def test_app_home_shows_readiness_and_the_viewers_own_action_items(bot: Harness) -> None:
    bot.slash("/action", "Write the checkout postmortem | owner: qa | due: 2d", user="U0ENG")
    bot.slash("/action", "Rotate the <!channel> embed token | owner: eng_oncall | due: 2d", user="U0ENG")
    home_opened(bot, QA, event_id="Ev1")
    bot.deliver()
    text = shown(valid(publishes(bot, QA)[-1]["view"]))
    assert "*Readiness: 0/3 ready*" in text
    assert "*qa-evidence* (pending, critical)" in text and "*embed-token* (pending, critical)" in text
    assert "facilitators" not in text  # not critical: counted, not listed
    assert f"owner qa (<@{QA}>)" in text
    assert "*A-1* Write the checkout postmortem" in text and "A-2" not in text  # A-2 is the on-call's
    bot.slash("/ready", "done qa-evidence https://ci.example/run/42", user=QA)
    bot.advance(CHECK_EVERY)
    text = shown(valid(publishes(bot, QA)[-1]["view"]))
    assert "*Readiness: 1/3 ready*" in text and "qa-evidence" not in text and "*embed-token*" in text
    home_opened(bot, "U0ENG", event_id="Ev2")
    bot.deliver()
    eng = shown(valid(publishes(bot, "U0ENG")[-1]["view"]))
    assert "*A-2* Rotate the &lt;!channel&gt; embed token" in eng and "<!channel>" not in eng


@pytest.fixture
def board(standin: SlackStandin, database_url: str, config: Config, clock: ManualClock) -> Iterator[Harness]:
    harness = Harness(standin, database_url, config, clock, board_token=BOARD_TOKEN)
    yield harness
    harness.close()


def test_the_board_state_has_the_readiness_tally_and_the_critical_gates_not_ready(board: Harness) -> None:
    board.slash("/ready", "blocked embed-token waiting on Shopify", user="U0REL")
    readiness = get(board, "/board.json").json()["sections"]["readiness"]
    assert (readiness["ready"], readiness["all"]) == (0, 3)
    gates = {g["key"]: g["state"] for g in readiness["critical_not_ready"]}
    assert gates == {"qa-evidence": "pending", "embed-token": "blocked"}
