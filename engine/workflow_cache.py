"""Live workflows kept between steps, so a step need not rebuild SpiffWorkflow's objects from JSON.

The database stays the truth. An entry is the workflow object exactly as a committed step left it, filed
under the instance's ``(version, history_hash)`` after that commit. A step *takes* the entry (removing it)
only when the row it has just read and locked carries the same pair. The version alone is not enough:
a database restored from a backup, or a test database recreated under the same URL, can reach the same
version number with a different history. The chain head is a SHA-256 over the whole history, so a match
means this very state.

Why the entry is taken, not read: a step changes the object in place. If the step fails (an exception,
a conflict, a rollback), nothing is put back, and the next step loads the committed state from the row.
Only :mod:`engine.runtime` uses this, and only after its transaction has committed.

With ``verify=True`` (the setting ``QIFU_VERIFY_STEPS=1``, which the test suite sets), every hit is checked: the
cached object must serialise to exactly the stored ``state_json``. Each step of the suite then shows that
reusing the object is the same as loading the row.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

DEFAULT_SIZE = 512


class CacheMismatch(AssertionError):
    """A cached workflow did not serialise to the stored state (only raised in verify mode)."""


class WorkflowCache:
    def __init__(self, size: int = DEFAULT_SIZE, verify: bool = False) -> None:
        self.size = max(0, size)
        self.verify = verify
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[int, tuple[int, str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, instance_id: int, version: int, head: str, state_json: str,
             dump: Callable[[Any], str]) -> Any | None:
        """The cached workflow of this committed state, removed from the cache; None on a miss."""
        with self._lock:
            entry = self._entries.pop(instance_id, None)
        if entry is None or entry[0] != version or entry[1] != head:
            self.misses += 1
            return None
        workflow = entry[2]
        if self.verify and dump(workflow) != state_json:
            raise CacheMismatch(f"cached workflow of instance {instance_id} (version {version}) differs from "
                                f"the stored state")
        self.hits += 1
        return workflow

    def put(self, instance_id: int, version: int, head: str, workflow: Any) -> None:
        """File ``workflow`` under the state a step has just committed."""
        if self.size == 0:
            return
        with self._lock:
            self._entries[instance_id] = (version, head, workflow)
            self._entries.move_to_end(instance_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def discard(self, instance_id: int) -> None:
        with self._lock:
            self._entries.pop(instance_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
