"""A transaction held open in another thread, and a stopwatch: for the tests that reads and writes never wait
for each other (tests/test_read_isolation.py, tests/web/test_read_isolation_pages.py).

The body gets an event to set once its transaction has touched the database; entering :class:`Held` waits
for it, so whatever the test then times runs while the transaction is certainly open. :meth:`Held.open`
tells afterwards whether it still was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    """``action()``'s result and the seconds it took."""
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


@dataclass
class Held:
    """``with Held(body) as held:`` runs ``body(ready)`` in a thread; the block starts once ``ready`` is set."""

    body: Callable[[threading.Event], Any]
    ready: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.body(self.ready)
        except BaseException as exc:  # re-raised in the test's thread
            self.error = exc
            self.ready.set()

    def __enter__(self) -> Held:
        self.thread.start()
        assert self.ready.wait(30), "the held transaction never started"
        if self.error is not None:
            raise self.error
        return self

    def open(self) -> bool:
        """Whether the held transaction is still open (its thread still running)."""
        return self.thread.is_alive()

    def __exit__(self, *exc: Any) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive(), "the held transaction never ended"
        if self.error is not None and exc[0] is None:
            raise self.error
