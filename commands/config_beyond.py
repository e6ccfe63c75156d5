"""The config of the services beyond the war room: `paging:` (PagerDuty) and `status_page:` (Statuspage).

Keys are never in the file: it names the environment variable that holds each (`routing_key_env`,
`api_key_env`), read at the edge when a call is made.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, PlainValidator

from commands.config_file import must
from commands.config_types import Duration, Retries, Role, Section, Text, Url

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}\Z")
PAGE_ID = re.compile(r"^[A-Za-z0-9]{1,40}\Z")

EnvName = Annotated[str, PlainValidator(must(lambda v: isinstance(v, str) and ENV_NAME.match(v),
                                             "an environment variable name like PAGERDUTY_ROUTING_KEY"))]
PageId = Annotated[Text, AfterValidator(must(lambda v: PAGE_ID.match(v), "a Statuspage page id like abc123"))]


class PagerDuty(Section):
    url: Url = "https://events.pagerduty.com/v2/enqueue"
    routing_key_env: EnvName = "PAGERDUTY_ROUTING_KEY"
    timeout: Duration = timedelta(seconds=5)
    retries: Retries = 2  # more attempts within one call; after that the event is tried again later


class Paging(Section):
    pagerduty: PagerDuty | None = None
    page_roles: tuple[Role, ...] = ()  # an escalation that reaches one of these roles also pages


class Statuspage(Section):
    url: Url = "https://api.statuspage.io/v1"
    page_id: PageId
    api_key_env: EnvName = "STATUSPAGE_API_KEY"
    timeout: Duration = timedelta(seconds=5)
    retries: Retries = 2


class StatusPage(Section):
    statuspage: Statuspage | None = None
