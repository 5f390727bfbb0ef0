"""Qifu's generic BPMN engine, split the way Camunda splits its services.

- :mod:`engine.repository` — deployments: validate, version and store diagrams.
- :mod:`engine.runtime`    — instances: start a case, complete a task, fire a timer; one transaction a step.
  Helpers of a step: :mod:`engine.instance_rows` (the instance row, SQL Core) and
  :mod:`engine.workflow_cache` (live workflows kept between steps).
- :mod:`engine.tasks`      — human tasks: open-task rows, claim, candidate groups.
- :mod:`engine.jobs`       — timers: due rows, exactly-once claiming, the executor.
- :mod:`engine.history`    — the hash-chained event log: append, verify, replay.
- :mod:`engine.calendar`   — the working-day calendar.
- :mod:`engine.scripting`  — restricted evaluation of diagram expressions.

Nothing in this package knows about enterprises; domain words live in ``handlers/``, ``processes/``
and ``web/``.
"""
