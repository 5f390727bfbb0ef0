"""Structured errors the engine raises; the CLI and the web layer turn them into messages.

Every error carries a machine-readable ``code`` and, where it helps, the BPMN element it is about, so a
designer or a clerk learns *what* is wrong and *where* without reading a traceback.
"""

from __future__ import annotations

from typing import Any


class QifuError(Exception):
    """Base of all errors the engine reports to users."""

    code = "error"

    def __init__(self, message: str, *, element: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.element = element
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.element:
            out["element"] = self.element
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.element}: {self.message}" if self.element else self.message


class DeploymentError(QifuError):
    """A diagram was refused at deploy time; nothing was stored."""

    code = "invalid_diagram"


class ExpressionError(QifuError):
    """An expression does not compile under, or breaks the rules of, the restricted engine."""

    code = "invalid_expression"


class FormValidationError(QifuError):
    """Submitted form data does not satisfy the task's formData; the case is unchanged.

    ``errors`` maps a field id to a Chinese message for that field.
    """

    code = "invalid_form"

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("表单数据无效：" + "；".join(f"{k}：{v}" for k, v in errors.items()), errors=errors)
        self.errors = errors


class ConflictError(QifuError):
    """Somebody else changed the case first (the task is gone or the version moved on)."""

    code = "conflict"


class NotFoundError(QifuError):
    code = "not_found"


class ServiceTaskError(QifuError):
    """A service-task handler failed; the step is rolled back."""

    code = "service_task_failed"


class NotCorrelatedError(QifuError):
    """A message from outside matched no case waiting for it; nothing changed."""

    code = "not_correlated"
