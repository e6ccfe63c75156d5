"""Time is a value: the edges own a clock (real, manual, shifted, fast); commands get `now` from their context."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """Starts at a given time and moves only when told (tests)."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, value: datetime) -> None:
        with self._lock:
            self._now = value


class ShiftedClock:
    """Real time plus an offset that `:advance` grows (the shell)."""

    def __init__(self, base: Clock | None = None) -> None:
        self._base = base or SystemClock()
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._base.now() + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta


class FastClock:
    """Virtual time running `speed` times faster than real time from `start` (the rehearsal)."""

    def __init__(self, start: datetime, speed: float, base: Clock | None = None) -> None:
        self._base = base or SystemClock()
        self._real_start = self._base.now()
        self._start = start
        self.speed = speed
        self._extra = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._start + (self._base.now() - self._real_start) * self.speed + self._extra

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._extra += delta
