"""WTForms built from the diagram: a task form is whatever its ``camunda:formData`` says.

:func:`task_form_class` turns ``engine.forms.FieldDef`` definitions into a FlaskForm (CSRF included) for
rendering. The fields are not validated here: ``engine.runtime.complete_task`` validates the submission
against the same definitions — one validation, the engine's — and the view puts its per-field Chinese
messages on the fields, with the user's input kept. Integers and dates are text fields, so what the user
typed comes back as typed.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from engine.forms import FieldDef

LONG_TEXT = 200  # a string field allowed to be longer than this is a textarea


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[InputRequired("请输入用户名"), Length(max=100)])
    password = PasswordField("密码", validators=[InputRequired("请输入密码"), Length(max=200)])


class ActionForm(FlaskForm):
    """A button that changes something (claim, unclaim, logout, reveal): a form only for its CSRF token."""


class ReassignForm(FlaskForm):
    username = StringField("改派给", validators=[Length(max=100)])


class AttachmentForm(FlaskForm):
    file = FileField("附件")


def _label(fd: FieldDef) -> str:
    return fd.label or fd.id


class _Required:
    """Marks a field as required for display (the asterisk); the engine checks it."""

    field_flags = {"required": True}

    def __call__(self, form: Any, field: Any) -> None:
        return None


def _initial(fd: FieldDef, data: dict[str, Any]) -> Any:
    """What the field shows first: the case's current value, else a literal default (never an expression)."""
    if fd.id in data and data[fd.id] is not None:
        return data[fd.id]
    if fd.default and "${" not in fd.default:
        return fd.default
    return None


def _field(fd: FieldDef, data: dict[str, Any]) -> Any:
    label = _label(fd)
    marks = [_Required()] if fd.required and fd.type != "boolean" else []
    render: dict[str, Any] = {}
    if fd.readonly:
        render["disabled"] = True
    initial = _initial(fd, data)
    if fd.type == "boolean":
        default = initial if isinstance(initial, bool) else str(initial).lower() in ("true", "1", "是")
        return BooleanField(label, default=bool(initial is not None and default), render_kw=render)
    if fd.type == "enum":
        choices = [SelectChoice("", "请选择")] + [SelectChoice(o[0], o[1] or o[0]) for o in fd.options]
        return SelectField(label, choices=choices, validate_choice=False, default=initial, validators=marks,
                           render_kw=render)
    if fd.type == "long":
        render.update(inputmode="numeric")
        return StringField(label, default=None if initial is None else str(initial), validators=marks,
                           render_kw=render)
    if fd.type == "date":
        render.update(type="date")
        return StringField(label, default=initial, validators=marks, render_kw=render)
    maxlength = fd.constraints.get("maxlength")
    if maxlength:
        render["maxlength"] = maxlength
    cls = TextAreaField if not maxlength or int(maxlength) > LONG_TEXT else StringField
    return cls(label, default=initial, validators=marks, render_kw=render)


def task_form_class(fields: list[FieldDef], data: dict[str, Any] | None = None) -> type[FlaskForm]:
    """A FlaskForm class for one task (a fresh class per request: fields differ per task and case)."""
    data = data or {}

    class TaskForm(FlaskForm):
        attachment = FileField("附件（可选）")

    for fd in fields:
        setattr(TaskForm, f"f_{fd.id}", _field(fd, data))
    return TaskForm


def submitted_values(form: FlaskForm, fields: list[FieldDef]) -> dict[str, Any]:
    """The values to hand to ``complete_task``: typed as the engine expects, readonly fields left out,
    empty optional fields left out (the engine then keeps whatever the case had)."""
    out: dict[str, Any] = {}
    for fd in fields:
        if fd.readonly:
            continue
        value = getattr(form, f"f_{fd.id}").data
        if fd.type == "boolean":
            out[fd.id] = bool(value)
        elif value is None or (isinstance(value, str) and not value.strip()):
            continue
        else:
            out[fd.id] = value.strip() if fd.type in ("long", "date", "enum") else value
    return out


def form_field(form: FlaskForm, fd: FieldDef) -> Any:
    return getattr(form, f"f_{fd.id}")
