"""Everything a running bot is made of, put together once: settings, database, clock,
the dispatcher (the way in), the outbox (the way out) and the scheduler."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.clock import Clock, SystemClock
from bot.config import Env
from bot.dispatch import Dispatcher
from bot.exporting import ExportBuilder
from bot.outbox import Outbox, Transport
from bot.own_metrics import OwnMetrics
from bot.scheduler import Scheduler
from commands.config import Config, load_config
from commands.render import environment
from commands.setup import ensure_launch
from db.session import make_engine, migrate, transaction

log = logging.getLogger("warroom")


@dataclass
class Runtime:
    env: Env
    config: Config
    engine: Engine
    clock: Clock
    dispatcher: Dispatcher
    outbox: Outbox
    scheduler: Scheduler
    started: bool = field(default=False)
    own_metrics: OwnMetrics | None = None  # GET /metrics (bot/wsgi.py)

    def start(self) -> None:
        freeze_heap()
        self.outbox.start(join=[self.config.war_room, *self.config.broadcast], war_room=self.config.war_room)
        self.scheduler.start()
        self.started = True

    def settle(self, max_rounds: int = 100) -> None:
        """Run due work and deliver until nothing more happens (what falls due may arm more)."""
        for _ in range(max_rounds):
            if not self.scheduler.run_once() and not self.outbox.drain():
                return

    def stop(self) -> None:
        if self.started:
            self.scheduler.stop()
            self.outbox.stop()
            self.started = False
        self.engine.dispose()


def freeze_heap() -> None:
    """Leave what start-up made (modules, mappers, Bolt, the templates: it lives as long as the process)
    out of the garbage collector's full collections, which would otherwise stop every thread to walk it."""
    gc.collect()
    gc.freeze()


def compile_templates() -> None:
    """Every message template compiled once at start-up (a few ms each), not when the first incident
    of the day needs it."""
    templates = environment()
    for name in templates.list_templates(filter_func=lambda name: name.endswith(".j2") and not name.startswith("files/")):
        templates.get_template(name)


def build_runtime(env: Env, transport: Transport, *, config: Config | None = None, clock: Clock | None = None,
                  engine: Engine | None = None, rehearsal: bool = False, scheduler_interval: float = 1.0,
                  outbox_workers: int = 8, outbox_pace_s: float = 1.0) -> Runtime:
    """Migrate the database, make sure the launch exists, and wire the parts (not started)."""
    config = config or load_config(env.config_path)
    compile_templates()
    clock = clock or SystemClock()
    engine = engine or make_engine(env.database_url)
    migrate(engine)
    for attempt in range(3):  # replicas starting together on a fresh database race to create the launch
        try:
            with transaction(engine) as session:
                ensure_launch(session, config, clock.now(), rehearsal=rehearsal)
            break
        except IntegrityError:
            if attempt == 2:
                raise
    # a claim outlives the longest attempt: a lookup and a send, each bounded by the client timeout
    claim_for = timedelta(seconds=max(5.0, 4 * env.slack_timeout))
    outbox = Outbox(engine, transport, clock, workers=outbox_workers, pace_s=outbox_pace_s, claim_for=claim_for,
                    build_file=ExportBuilder(engine, config, clock, env.secrets))
    dispatcher = Dispatcher(engine=engine, config=config, clock=clock)
    scheduler = Scheduler(dispatcher, interval=scheduler_interval)
    wire(dispatcher, outbox, scheduler)
    own_metrics = OwnMetrics(engine, clock)
    dispatcher.observe, outbox.on_sent = own_metrics.command, own_metrics.delivered
    return Runtime(env=env, config=config, engine=engine, clock=clock, dispatcher=dispatcher, outbox=outbox,
                   scheduler=scheduler, own_metrics=own_metrics)


def wire(dispatcher: Dispatcher, outbox: Outbox, scheduler: Scheduler) -> None:
    """A commit may have queued messages (wake the outbox) and created or armed timers (the scheduler
    looks up its next deadline); a posted ping arms the next escalation."""

    def committed() -> None:
        outbox.wake()
        scheduler.poke()

    dispatcher.on_commit = committed
    outbox.on_armed = scheduler.poke
