"""`/contingency [scenario]`: the seed §7 table (config `contingencies`): immediate action and owner.

A scenario is matched case-insensitively: the exact name, else names starting with the words given,
else names containing them, else the closest spelling. Several matches are listed; none names the table.
The owner is a role when it is one (its holder is mentioned), else shown as written.
"""

from __future__ import annotations

import difflib

from commands.config import Contingency
from commands.context import Context, Result, role_holder
from commands.errors import CommandError
from commands.registry import slash
from commands.render import render, reply
from commands.roles import ROLE_NAME

USAGE = reply("contingency.usage")


def match(contingencies: tuple[Contingency, ...], query: str) -> list[Contingency]:
    q = " ".join(query.lower().split())
    names = {c.scenario.lower(): c for c in contingencies}
    if q in names:
        return [names[q]]
    for test in (lambda n: n.startswith(q), lambda n: q in n,
                 lambda n: all(word in n for word in q.split())):
        found = [c for name, c in names.items() if test(name)]
        if found:
            return found
    close = difflib.get_close_matches(q, list(names), n=3, cutoff=0.6)
    return [names[n] for n in close]


def owner_of(ctx: Context, contingency: Contingency) -> dict[str, str | None]:
    role = contingency.owner.strip().lower().replace("-", "_")
    if ROLE_NAME.match(role):
        return {"role": role, "user": role_holder(ctx.session, ctx.launch.id, role)}
    return {"role": contingency.owner, "user": None}


@slash("/contingency", usage=USAGE, summary="the contingency playbook: immediate action and owner for a scenario")
def contingency_command(ctx: Context, text: str) -> Result:
    table = ctx.config.contingencies
    if not table:
        return Result(reply=reply("contingency.none_configured"))
    query = text.strip()
    if len(query) > 200:
        raise CommandError(reply("contingency.in_a_few_words"), USAGE)
    if not query:
        return Result(reply=render("contingency_list.j2", rows=[(c, owner_of(ctx, c)) for c in table]))
    found = match(table, query)
    if not found:
        raise CommandError(reply("contingency.unknown", query=query, rows=table), USAGE)
    return Result(reply=render("contingency.j2", rows=[(c, owner_of(ctx, c)) for c in found]))
