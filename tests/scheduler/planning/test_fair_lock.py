"""The lock of ``evdc serve``'s sites and of the ledger's writers hands itself over in arrival order."""

from __future__ import annotations

import threading
import time

from scheduler.planning.fair_lock import FairLock

#: Threads queued behind the holder.
WAITERS = 12


def test_waiters_get_the_lock_in_the_order_they_asked():
    lock = FairLock()
    lock.acquire()
    order: list[int] = []

    def worker(k: int) -> None:
        with lock:
            order.append(k)
            time.sleep(0.001)  # hold it a moment, as an answer does

    threads = []
    for k in range(WAITERS):
        t = threading.Thread(target=worker, args=(k,))
        t.start()
        deadline = time.monotonic() + 10
        while lock.waiting < k + 1:  # this thread is queued before the next one starts
            assert time.monotonic() < deadline, "a worker never queued"
            time.sleep(0.0005)
        threads.append(t)
    assert lock.waiting == WAITERS
    lock.release()
    for t in threads:
        t.join(timeout=10)
    assert order == list(range(WAITERS))
    # free again: taken at once, and a lone holder releases it to nobody
    lock.acquire()
    lock.release()
    assert not lock._held and lock.waiting == 0


def test_only_one_holder_at_a_time_under_contention():
    lock = FairLock()
    inside = [0]
    most = [0]

    def worker() -> None:
        for _ in range(200):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert most[0] == 1 and not lock._held
