"""Server-side validation of user-task form data against the diagram's ``camunda:formData``.

Nothing about a case changes until the whole submission passes. Types: ``string``, ``long``, ``boolean``,
``date`` (ISO ``YYYY-MM-DD``), ``enum``; constraints (``camunda:validation``): ``required``, ``minlength``,
``maxlength``, ``min``, ``max``, ``readonly``. Fields the form does not define are refused, so a form post
cannot overwrite other case data. Text may not hold C0 control characters other than TAB, LF and CR, nor
lone surrogates: PostgreSQL cannot store NUL in text, SQLite would store it silently, and a lone surrogate
cannot be encoded as UTF-8 at all — so the same value would behave differently per database.

:func:`check_fields` is the deploy-time half: a field the forms cannot fill (an unknown type, a constraint
that cannot be evaluated or never be met, an enum without options) would make its task impossible to
complete, so the diagram is refused instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .errors import FormValidationError

SUPPORTED_TYPES = ("string", "long", "boolean", "date", "enum")
SUPPORTED_CONSTRAINTS = ("required", "minlength", "maxlength", "min", "max", "readonly")
MAX_STRING = 20000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # C0 except TAB, LF, CR
_SURROGATE = re.compile(r"[\ud800-\udfff]")
UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_INTEGER = re.compile(r"^-?\d{1,18}$")


@dataclass
class FieldDef:
    id: str
    type: str
    label: str | None
    default: str | None
    options: list[tuple[str, str]] = field(default_factory=list)
    constraints: dict[str, str | None] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def required(self) -> bool:
        return "required" in self.constraints

    @property
    def readonly(self) -> bool:
        return "readonly" in self.constraints


def form_fields(task_spec: Any) -> list[FieldDef]:
    """The form of a user-task spec as plain field definitions (empty for tasks without a form)."""
    return fields_of_form(getattr(task_spec, "form", None))


def fields_of_form(form: Any) -> list[FieldDef]:
    """A SpiffWorkflow Camunda ``Form`` (or None) as plain field definitions."""
    out: list[FieldDef] = []
    for f in getattr(form, "fields", []) or []:
        out.append(FieldDef(
            id=f.id, type=f.type or "string", label=f.label, default=f.default_value,
            options=[(o.id, o.name) for o in getattr(f, "options", [])],
            constraints={v.name: v.config for v in f.validation},
            properties={p.id: p.value for p in f.properties},
        ))
    return out


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _coerce(fd: FieldDef, value: Any) -> Any:
    if fd.type == "string":
        if not isinstance(value, str):
            raise ValueError("应为文本")
        _check_text(value)
        return value
    if fd.type == "long":
        if isinstance(value, bool):
            raise ValueError("应为整数")
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if not text.lstrip("-").isdigit() or len(text) > 19:
            raise ValueError("应为整数")
        return int(text)
    if fd.type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "on", "yes", "是"):
            return True
        if text in ("false", "0", "off", "no", "否"):
            return False
        raise ValueError("应为是或否")
    if fd.type == "date":
        try:
            return date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise ValueError("应为日期 (YYYY-MM-DD)") from None
    if fd.type == "enum":
        allowed = [o[0] for o in fd.options]
        if str(value) not in allowed:
            raise ValueError("取值不在可选范围内")
        return str(value)
    raise ValueError(f"不支持的字段类型 {fd.type}")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be kept as text, in Chinese, or None. The one rule for every text a user sends
    (task forms, intake, the API): C0 control characters other than TAB, LF and CR, and lone surrogates
    (valid in JSON, not in UTF-8), are refused — PostgreSQL cannot store NUL, SQLite would keep it silently."""
    bad = UNSTORABLE.search(value)
    if bad is None:
        return None
    where = f"第 {bad.start() + 1} 个字符 U+{ord(bad.group()):04X}"
    if _SURROGATE.match(bad.group()):
        return f"含有无法保存的字符（{where}，孤立的代理项，不是有效的 Unicode 文本）"
    return f"含有不允许的控制字符（{where}，只允许制表符、换行、回车）"


def _check_text(value: str) -> None:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)


def _printable(key: Any) -> str:
    """A submitted key as it may appear in a message: control characters and lone surrogates escaped."""
    text = str(key)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}",
                          _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def _check_constraints(fd: FieldDef, value: Any) -> None:
    c = fd.constraints
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ValueError(f"长度不能超过 {MAX_STRING}")
        if (minlength := c.get("minlength")) and len(value) < int(minlength):
            raise ValueError(f"长度不能少于 {c['minlength']} 个字符")
        if (maxlength := c.get("maxlength")) and len(value) > int(maxlength):
            raise ValueError(f"长度不能超过 {c['maxlength']} 个字符")
    if fd.type == "long":
        if (low := c.get("min")) is not None and value < int(low):
            raise ValueError(f"不能小于 {c['min']}")
        if (high := c.get("max")) is not None and value > int(high):
            raise ValueError(f"不能大于 {c['max']}")
    if fd.type == "date":
        if c.get("min") and value < c["min"]:
            raise ValueError(f"不能早于 {c['min']}")
        if c.get("max") and value > c["max"]:
            raise ValueError(f"不能晚于 {c['max']}")


def validate_form(fields: list[FieldDef], submitted: dict[str, Any]) -> dict[str, Any]:
    """Return the typed values to store, or raise :class:`FormValidationError` with a message per field."""
    if not isinstance(submitted, dict):
        raise FormValidationError({"_": "提交的数据必须是键值对"})
    errors: dict[str, str] = {}
    known = {fd.id for fd in fields}
    for key in submitted:
        if key not in known:
            errors[_printable(key)] = "表单中没有此字段"
    clean: dict[str, Any] = {}
    for fd in fields:
        if fd.readonly:
            continue
        value = submitted.get(fd.id)
        if _empty(value) and fd.type != "boolean":
            if fd.required:
                errors[fd.id] = f"{fd.label or fd.id}为必填项"
            continue
        if value is None and fd.type == "boolean":
            value = False
        try:
            typed = _coerce(fd, value)
            _check_constraints(fd, typed)
        except ValueError as exc:
            errors[fd.id] = f"{fd.label or fd.id}{exc}"
            continue
        clean[fd.id] = typed
    if errors:
        raise FormValidationError(errors)
    return clean


# --- deploy time: can every field be filled in? ---------------------------------------------------------
def _is_date(text: str) -> bool:
    """An ISO date as ``_coerce`` writes it (``validate_form`` compares them as text)."""
    try:
        return date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _field_problem(fd: FieldDef) -> str | None:
    if fd.type not in SUPPORTED_TYPES:
        return f"类型 {fd.type} 不受支持（可用：{', '.join(SUPPORTED_TYPES)}）"
    if fd.type == "enum":
        if not fd.options:
            return "枚举字段没有可选项 (camunda:value)"
        if any(not option_id for option_id, _name in fd.options):
            return "枚举可选项缺少 id"
    c = fd.constraints
    for name, config in c.items():
        if name not in SUPPORTED_CONSTRAINTS:
            return f"校验规则 {name or '（无名称）'} 不受支持（可用：{', '.join(SUPPORTED_CONSTRAINTS)}）"
        if name in ("required", "readonly"):
            continue
        if config is None or not config.strip():
            return f"校验规则 {name} 缺少取值 (config)"
        if name in ("minlength", "maxlength"):
            if not config.strip().isdigit() or len(config.strip()) > 9:
                return f"校验规则 {name} 的取值 {config!r} 不是非负整数"
        elif fd.type == "long":
            if not _INTEGER.match(config.strip()):
                return f"校验规则 {name} 的取值 {config!r} 不是整数"
        elif fd.type == "date":
            if not _is_date(config.strip()):
                return f"校验规则 {name} 的取值 {config!r} 不是日期 (YYYY-MM-DD)"
        else:
            return f"校验规则 {name} 只适用于 long 和 date 字段"
    low = c.get("minlength")
    high = c.get("maxlength")
    if low is not None and int(low) > min(int(high) if high is not None else MAX_STRING, MAX_STRING):
        return f"最小长度 {low} 大于最大长度，字段永远无法填写"
    if (min_c := c.get("min")) is not None and (max_c := c.get("max")) is not None:
        low_v, high_v = min_c.strip(), max_c.strip()
        if (int(low_v) > int(high_v)) if fd.type == "long" else (low_v > high_v):
            return f"最小值 {low_v} 大于最大值 {high_v}，字段永远无法填写"
    return None


def check_fields(fields: list[FieldDef]) -> None:
    """Raise ``ValueError`` naming the first field the task forms could never fill in; see the module doc."""
    seen: set[str] = set()
    for fd in fields:
        if not fd.id:
            raise ValueError(f"表单字段{f' {fd.label}' if fd.label else ''}缺少 id")
        where = f"表单字段 {fd.id}" + (f"（{fd.label}）" if fd.label else "")
        if fd.id in seen:
            raise ValueError(f"{where} 重复定义")
        seen.add(fd.id)
        problem = _field_problem(fd)
        if problem:
            raise ValueError(f"{where}: {problem}")
