"""Service-task handlers: one small module per verb, registered by topic name on import.

Diagrams reference a handler with ``camunda:type="external" camunda:topic="…"``; deploying a diagram whose
topic is not registered here is refused. The domain handlers (transfer, joint review, escalation, revisit
sampling, notification, ledger) arrive with the seed processes.
"""
