"""`/export ndjson|csv|md`: the record of the launch, uploaded to the war room as a file.

The command queues what to build (format, launch, requester; the row's channel), not the file: the
outbox builds it when it sends it (`built_file`), so forty exports do not store forty copies of the
record, the ack does not wait for the record to be read, and the file shows the record as it is
when it lands."""

from __future__ import annotations

import re
from typing import Any

from commands.audit import incidents_csv, ndjson
from commands.context import Context, Result, record, roles_of, upload
from commands.errors import CommandError, Refused
from commands.registry import slash
from commands.render import reply
from commands.retro import retrospective
from db.models import Launch

USAGE = reply("export.usage")
FORMATS = {
    "ndjson": ("ndjson", "The audit trail (one JSON event a line)"),
    "csv": ("csv", "The incidents table"),
    "md": ("md", "The retrospective"),
}


def export_text(ctx: Context, fmt: str, launch: Launch) -> str:
    """The export of `launch` in one format (shared with `python -m bot export`)."""
    if fmt == "ndjson":
        return ndjson(ctx.session, launch)
    if fmt == "csv":
        return incidents_csv(ctx.session, launch, {k: s.name for k, s in ctx.config.severities.items()})
    if fmt == "md":
        return retrospective(ctx.session, launch, ctx.config, ctx.now)
    raise CommandError(reply("export.not_a_format"), USAGE)


def built_file(ctx: Context, build: dict[str, Any]) -> str:
    """The file an outbox row's `build` asks for, as the record is now (`ctx.now`, `ctx.launch`)."""
    fmt = str(build.get("format"))
    if fmt not in FORMATS:
        raise CommandError(reply("export.not_a_format"), USAGE)
    return export_text(ctx, fmt, ctx.launch)


def filename(launch: Launch, fmt: str, now_stamp: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", launch.name.lower()).strip("-")[:60] or "launch"
    return f"{slug}-{'retrospective' if fmt == 'md' else 'audit' if fmt == 'ndjson' else 'incidents'}-{now_stamp}.{fmt}"


@slash("/export", usage=USAGE, summary="upload the audit trail (ndjson), incidents (csv) or retrospective (md)")
def export_command(ctx: Context, text: str) -> Result:
    fmt = text.strip().lower()
    if fmt not in FORMATS:
        if not fmt:
            raise CommandError(reply("export.say_which"), USAGE)
        raise CommandError(reply("export.not_a_format"), USAGE)
    assert ctx.launch.id is not None
    if not roles_of(ctx.session, ctx.launch.id, ctx.user):  # the whole record: not for anyone in any channel
        raise Refused(reply("export.refused"), "/export")
    channel = ctx.launch.war_room  # where the bot is a member, whichever channel asked
    name = filename(ctx.launch, fmt, ctx.now.strftime("%Y%m%d-%H%M"))
    build = {"format": fmt, "launch_id": ctx.launch.id, "requested_by": ctx.user}
    upload(ctx, channel, name, build, "export_uploaded", fmt_name=FORMATS[fmt][1])
    record(ctx, "export.requested", format=fmt, channel=channel, filename=name)
    return Result(reply=reply("export.exporting", what=FORMATS[fmt][1], filename=name))
