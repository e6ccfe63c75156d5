"""`python -m bot serve`: the HTTP app on waitress, a production-grade threaded WSGI server."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from waitress.server import create_server

from bot.config import Env
from bot.payloads import MAX_BODY
from bot.wsgi import create_app

log = logging.getLogger("warroom.server")


# waitress as `serve` runs it (bench/ack.py serves its bare Bolt app with the same settings)
MAX_CONNECTIONS = 100
# at most 100 connections at once (waitress counts its own listening socket and wake-up pipe too), idle
# ones closed after 10 s so they do not keep others waiting; a body over 1 MiB is refused before waitress
# buffers it (its default: 1 GiB)
SERVER_SETTINGS: dict[str, Any] = {"threads": 16, "connection_limit": MAX_CONNECTIONS + 2, "channel_timeout": 10,
                                   "ident": "warroom", "max_request_body_size": MAX_BODY}


def make_server(app: Any, port: int, host: str = "0.0.0.0") -> Any:
    return create_server(app, host=host, port=port, **SERVER_SETTINGS)


def serve(env: Env) -> None:
    app = create_app(env)
    app.runtime.start()
    server = make_server(app, env.port)
    stopping = threading.Event()

    def shutdown(signum: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("stopping", extra={"signal": signum})
            server.close()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("serving", extra={"port": env.port, "database": env.database_url.split("://")[0]})
    try:
        server.run()
    except (OSError, ValueError):
        if not stopping.is_set():
            raise
    finally:
        app.runtime.stop()
