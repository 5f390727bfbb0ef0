"""WTForms built from the diagram: a task form is whatever its ``camunda:formData`` says.

:func:`task_form_class` turns ``engine.forms.FieldDef`` definitions into a FlaskForm (CSRF included) with
Chinese messages: first check in the browser's round trip, with the user's input kept on an error.
``engine.runtime.complete_task`` validates the same data again against the same definitions — the engine's
check is the one that counts, this one gives per-field messages before anything is attempted.

Integers and dates are text fields with our own validators so every message is Chinese (WTForms' own
IntegerField/DateField messages are English and fire before any custom validator).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, ValidationError
from wtforms.validators import Optional as OptionalValidator

from engine.forms import FieldDef

_INT = re.compile(r"^-?\d{1,18}$")
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


def _int_validator(fd: FieldDef):  # noqa: ANN202
    low, high = fd.constraints.get("min"), fd.constraints.get("max")

    def check(form: Any, fld: Any) -> None:
        text = (fld.data or "").strip()
        if not text:
            return
        if not _INT.match(text):
            raise ValidationError(f"{_label(fd)}应为整数")
        value = int(text)
        if low is not None and value < int(low):
            raise ValidationError(f"{_label(fd)}不能小于 {low}")
        if high is not None and value > int(high):
            raise ValidationError(f"{_label(fd)}不能大于 {high}")

    return check


def _date_validator(fd: FieldDef):  # noqa: ANN202
    low, high = fd.constraints.get("min"), fd.constraints.get("max")

    def check(form: Any, fld: Any) -> None:
        text = (fld.data or "").strip()
        if not text:
            return
        try:
            value = date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValidationError(f"{_label(fd)}应为日期（YYYY-MM-DD）") from None
        if low and value < low:
            raise ValidationError(f"{_label(fd)}不能早于 {low}")
        if high and value > high:
            raise ValidationError(f"{_label(fd)}不能晚于 {high}")

    return check


def _enum_validator(fd: FieldDef):  # noqa: ANN202
    allowed = {o[0] for o in fd.options}

    def check(form: Any, fld: Any) -> None:
        if fld.data and fld.data not in allowed:
            raise ValidationError(f"{_label(fd)}的取值不在可选范围内")

    return check


def _length_validator(fd: FieldDef):  # noqa: ANN202
    low, high = fd.constraints.get("minlength"), fd.constraints.get("maxlength")

    def check(form: Any, fld: Any) -> None:
        text = fld.data or ""
        if not text.strip():
            return
        if low and len(text) < int(low):
            raise ValidationError(f"{_label(fd)}长度不能少于 {low} 个字符")
        if high and len(text) > int(high):
            raise ValidationError(f"{_label(fd)}长度不能超过 {high} 个字符")

    return check


def _initial(fd: FieldDef, data: dict[str, Any]) -> Any:
    """What the field shows first: the case's current value, else a literal default (never an expression)."""
    if fd.id in data and data[fd.id] is not None:
        return data[fd.id]
    if fd.default and "${" not in fd.default:
        return fd.default
    return None


def _field(fd: FieldDef, data: dict[str, Any]) -> Any:
    label = _label(fd)
    required = [InputRequired(f"{label}为必填项")] if fd.required and fd.type != "boolean" else \
        [OptionalValidator()]
    render: dict[str, Any] = {}
    if fd.readonly:
        render["disabled"] = True
    initial = _initial(fd, data)
    if fd.type == "boolean":
        default = initial if isinstance(initial, bool) else str(initial).lower() in ("true", "1", "是")
        return BooleanField(label, default=bool(initial is not None and default), render_kw=render)
    if fd.type == "enum":
        choices = [SelectChoice("", "请选择")] + [SelectChoice(o[0], o[1] or o[0]) for o in fd.options]
        return SelectField(label, choices=choices, validate_choice=False, default=initial,
                           validators=[*required, _enum_validator(fd)], render_kw=render)
    if fd.type == "long":
        render.update(inputmode="numeric")
        return StringField(label, default=None if initial is None else str(initial),
                           validators=[*required, _int_validator(fd)], render_kw=render)
    if fd.type == "date":
        render.update(type="date")
        return StringField(label, default=initial, validators=[*required, _date_validator(fd)], render_kw=render)
    maxlength = fd.constraints.get("maxlength")
    if maxlength:
        render["maxlength"] = maxlength
    cls = TextAreaField if not maxlength or int(maxlength) > LONG_TEXT else StringField
    return cls(label, default=initial, validators=[*required, _length_validator(fd)], render_kw=render)


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
