"""`python -m bot serve`: the HTTP app on waitress, a production-grade threaded WSGI server."""

from __future__ import annotations

import logging
import signal
import threading

from waitress.server import create_server

from bot.config import Env
from bot.wsgi import create_app

log = logging.getLogger("warroom.server")


def serve(env: Env, *, threads: int = 16) -> None:
    app = create_app(env)
    app.runtime.start()
    server = create_server(app, host="0.0.0.0", port=env.port, threads=threads, connection_limit=1000,
                           channel_timeout=30, ident="warroom")
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
