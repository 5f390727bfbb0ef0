"""The read side: what the pages show, as paged SQL over the engine's services and the domain's ledger.

Nothing here changes a case (every change goes through the engine's step path), and nothing reads the engine's
tables directly: instances, tasks, timers, specs and history come from the services on ``ProcessEngine``;
the business view of a case comes from its ``enterprise_case`` ledger row. Every list is filtered, counted and
paged in the database, with the same visibility rule as the case page (:mod:`web.scope`).
"""
