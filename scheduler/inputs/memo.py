"""Results computed from large objects that do not change, kept by the objects' identities.

A warm planner answers request after request against the same plan tables and site inputs; what it
derives from them (the committed decisions, each site's headroom) is the same every time.
``IdentityMemo`` keeps the last few results keyed by the ``id`` of the objects they came from, and
holds those objects, so an id cannot be reused by another object while its result is kept. The
objects must not be changed in place (plan tables and inputs are not: a change makes new ones).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: Results kept per memo (the oldest goes first).
MEMO_SIZE = 16


class IdentityMemo(Generic[T]):
    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[int, ...], tuple[tuple, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, objects: tuple, compute: Callable[[], T]) -> T:
        """``compute()``, or the result it gave for these very objects."""
        key = tuple(id(o) for o in objects)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit[1]
        value = compute()
        with self._lock:
            self._items[key] = (objects, value)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def peek(self, objects: tuple) -> T | None:
        """The result kept for these very objects, or None."""
        with self._lock:
            hit = self._items.get(tuple(id(o) for o in objects))
            return None if hit is None else hit[1]

    def put(self, objects: tuple, value: T) -> None:
        """Keep ``value`` as the result for these very objects (one derived more cheaply elsewhere)."""
        with self._lock:
            self._items[tuple(id(o) for o in objects)] = (objects, value)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
