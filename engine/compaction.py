"""Keep a long-running case's saved state small: drop old, finished parts of the task tree before saving.

SpiffWorkflow keeps every task it ever created. A case that loops (a dissatisfied rating sends it back, a
reminder repeats) grows its tree on every turn, and since every step loads and saves the whole tree, the
cost of a step grows with the age of the case. The history table already records what happened, so the
saved state only keeps what the engine needs to go on.

A finished task is *old* when it lies on the way to a live (unfinished) task and more than ``keep`` tasks
above it. Just before the state is saved (never in the middle of a step), for each old task:

- *dead branches* below it are dropped: subtrees of finished tasks that lead to no live task (the boundary
  event that did not fire, the reminder branch that ran to its end, the parallel branches of an earlier
  turn). A dead branch holding a parallel/inclusive join task is dropped only if that join task finished
  before the join last fired on the live path (:class:`engine.bpmn.QifuParallelGateway` ignores such
  arrivals anyway), so a branch waiting at a join in the current turn is never lost;
- then, if it has a single child left, the old task itself is spliced out and its child re-attached to its
  parent. Ancestry between the tasks that stay is unchanged (``is_descendant_of`` / ``find_ancestor``), and
  task data, stored as a delta against the parent, is recomputed from the new parent when serialised.

Always kept: the root, every live task and the ``keep`` tasks above it, the newest completed join task of
each join on every live path, the last completed task, tasks that own a subprocess. A finished case keeps
its whole tree.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.parallel_gateway import ParallelGateway
from SpiffWorkflow.util.task import TaskState

KEEP = 3
_INFINITE = 1 << 30
_JOINS = (ParallelGateway, InclusiveGateway)


def compact(workflow: Any, keep: int = KEEP) -> int:
    """Compact ``workflow`` and its subprocesses in place; returns the number of tasks removed."""
    subprocesses = getattr(workflow, "subprocesses", {})
    guard = set(subprocesses)
    removed = _compact_tree(workflow, keep, guard)
    for sub in subprocesses.values():
        removed += _compact_tree(sub, keep, guard)
    return removed


def _compact_tree(workflow: Any, keep: int, guard: set[Any]) -> int:
    root, tasks = workflow.task_tree, workflow.tasks
    if root is None:
        return 0
    guard = set(guard)
    if getattr(workflow, "last_task", None) is not None:
        guard.add(workflow.last_task.id)

    order = _preorder(root, tasks)
    distance: dict[Any, int] = {}
    for task in reversed(order):
        if not task.has_state(TaskState.FINISHED_MASK):
            distance[task.id] = 0
        else:
            distance[task.id] = min([distance[c] + 1 for c in task._children if c in distance] + [_INFINITE])
    live = [t for t in order if distance[t.id] == 0]
    if not live:
        return 0  # a finished case keeps its whole tree

    cutoff = _join_cutoffs(live, guard)
    removed = 0
    for task in order:
        if task is root or task.id not in tasks or task.id in guard or not keep < distance[task.id] < _INFINITE:
            continue
        for child_id in list(task._children):
            branch = _subtree(tasks, child_id)
            if distance.get(child_id) == _INFINITE and _droppable(branch, guard, cutoff):
                task._children.remove(child_id)
                for dead in branch:
                    del tasks[dead.id]
                removed += len(branch)
        if len(task._children) != 1:
            continue
        parent, child = tasks.get(task._parent), tasks.get(task._children[0])
        if parent is None or child is None:
            continue
        parent._children[parent._children.index(task.id)] = child.id
        child._parent = parent.id
        del tasks[task.id]
        removed += 1
    return removed


def _join_cutoffs(live: list[Any], guard: set[Any]) -> dict[str, float]:
    """Per join spec: when it last fired on a live path (the earliest such instant over all live tasks).

    The join task that fired is added to ``guard`` so that it stays in the tree.
    """
    cutoff: dict[str, float] = {}
    for task in live:
        seen: set[str] = set()
        node = task.parent
        while node is not None:
            spec = node.task_spec
            if isinstance(spec, _JOINS) and node.state == TaskState.COMPLETED and spec.name not in seen:
                seen.add(spec.name)
                guard.add(node.id)
                cutoff[spec.name] = min(cutoff.get(spec.name, node.last_state_change), node.last_state_change)
            node = node.parent
    return cutoff


def _droppable(branch: list[Any], guard: set[Any], cutoff: dict[str, float]) -> bool:
    for task in branch:
        if task.id in guard or not task.has_state(TaskState.FINISHED_MASK):
            return False
        if isinstance(task.task_spec, _JOINS):
            fired = cutoff.get(task.task_spec.name)
            if fired is None or task.last_state_change > fired:
                return False
    return True


def _subtree(tasks: dict[Any, Any], task_id: Any) -> list[Any]:
    return _preorder(tasks[task_id], tasks) if task_id in tasks else []


def _preorder(root: Any, tasks: dict[Any, Any]) -> list[Any]:
    order, stack = [], [root]
    while stack:
        task = stack.pop()
        order.append(task)
        stack.extend(tasks[c] for c in reversed(task._children) if c in tasks)
    return order
