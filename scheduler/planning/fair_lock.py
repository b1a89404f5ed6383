"""A lock that serves its waiters first come, first served (``FairLock``)."""

from __future__ import annotations

import threading
from collections import deque


class FairLock:
    """A lock handed to its waiters in the order they asked (``threading.Lock`` is not: under twenty
    clients a thread could wait seconds while later arrivals took it again and again). Ownership passes
    straight from the releasing thread to the longest waiter."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        waiter.acquire()  # released by ``release``, which leaves the lock held for this thread

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False

    @property
    def waiting(self) -> int:
        """How many threads wait for the lock now."""
        with self._mutex:
            return len(self._waiters)

    def __enter__(self) -> "FairLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
