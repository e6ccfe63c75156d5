"""The CLI: `python -m bot [serve|shell|rehearse|export|check-config]` (console script `warroom`)."""

from __future__ import annotations

import argparse
import sys

from bot import logs
from bot.config import Env
from commands.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warroom", description="Run a product launch from Slack.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="HTTP server: POST /slack/events, GET /healthz")
    sub.add_parser("shell", help="a terminal session over the same handlers (no Slack needed)")
    rehearse = sub.add_parser("rehearse", help="play the run-of-show on an accelerated clock")
    rehearse.add_argument("--speed", type=float, default=60.0, help="virtual seconds per real second")
    rehearse.add_argument("--from", dest="start", default="T-30m", help="first mark, e.g. T-30m")
    rehearse.add_argument("--until", default="T+4h", help="last mark, e.g. T+4h")
    rehearse.add_argument("--channel", default=None, help="with Slack tokens: rehearse in this channel")
    export = sub.add_parser("export", help="the audit trail (ndjson, csv) or the retrospective (md)")
    export.add_argument("--format", choices=("ndjson", "csv", "md"), default="ndjson")
    export.add_argument("--launch", default=None, help="launch name (default: the configured launch)")
    export.add_argument("--out", default=None, help="file to write (default: stdout)")
    export.add_argument("--database", default=None,
                        help="the record to read: a URL or a SQLite file (default: DATABASE_URL, else the newest "
                             "of warroom.db and rehearsal.db)")
    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", nargs="?", default=None)
    args = parser.parse_args(argv)

    env = Env.from_environ()
    if args.command == "check-config":
        return check_config(args.file or env.config_path)
    logs.configure(env.log_level, env.secrets)
    try:
        load_config(env.config_path)
    except ConfigError as exc:
        print(f"warroom: the config {env.config_path} has errors:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 1

    command = args.command
    if command is None:
        if env.bot_token and env.app_token:
            command = "socket"
        elif env.bot_token and env.signing_secret:
            command = "serve"
        else:
            command = "shell"
    if command == "serve":
        from bot.server import serve

        serve(env)
        return 0
    if command == "socket":
        from bot.socket import run_socket_mode

        run_socket_mode(env)
        return 0
    if command == "shell":
        from bot.shell import run_shell

        return run_shell(env)
    if command == "rehearse":
        from bot.rehearse import run_rehearsal

        return run_rehearsal(env, speed=args.speed, start=args.start, until=args.until, channel=args.channel)
    if command == "export":
        from bot.exporting import run_export

        return run_export(env, fmt=args.format, launch=args.launch, out=args.out, database=args.database)
    parser.error(f"unknown command {command}")
    return 2


def check_config(path: str | None) -> int:
    try:
        load_config(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line)
        return 1
    print(f"{path or 'built-in defaults'}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
