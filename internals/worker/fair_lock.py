"""`FairLock`: the worker's compute lock, handed over in arrival order.

A long operation (a generation, a demo's training loop) takes the lock per step, or gives it up between
steps with `yield_to_waiters()`, so that another client's short request (an attention map) runs between two
steps instead of after the whole run. With a plain `threading.Lock` that does not work: the thread that
releases it usually takes it again before a waiting thread wakes up. Here each `acquire` takes a ticket and
the lock goes to the oldest ticket, so a waiter is served at the next step boundary.
"""

from __future__ import annotations

import threading
from typing import Self


class FairLock:
    """A non-reentrant lock served first come, first served (a ticket lock on a condition variable)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def acquire(self) -> bool:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()
        return True

    def release(self) -> None:
        with self._cond:
            if self._serving >= self._next_ticket:
                raise RuntimeError("release of an unheld FairLock")
            self._serving += 1
            self._cond.notify_all()

    def locked(self) -> bool:
        with self._cond:
            return self._serving < self._next_ticket

    def waiting(self) -> int:
        """How many threads wait for the lock (not counting its holder)."""
        with self._cond:
            return max(0, self._next_ticket - self._serving - 1)

    def yield_to_waiters(self) -> bool:
        """Called by the holder between two steps: when others wait, let every one of them run first, then
        take the lock back (True); with nobody waiting, keep it (False)."""
        with self._cond:
            if self._next_ticket - self._serving <= 1:
                return False
            ticket = self._next_ticket
            self._next_ticket += 1
            self._serving += 1
            self._cond.notify_all()
            while ticket != self._serving:
                self._cond.wait()
        return True

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
