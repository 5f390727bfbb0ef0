"""Intake (受理): the one way a case starts — clerk form, public page, intake API, demo data, tests.

:func:`submit_case` validates the fields against the reference data, allocates the business key
(``PA-YYYYMMDD-NNNN`` / ``FH-YYYYMMDD-NNNN``, Asia/Shanghai date), creates the enterprise's private
tracking token and starts the process. On any error nothing is saved: validation happens before the start,
and the start (with the diagram's ``ledger register`` step) is one transaction.

Only the hash of the tracking token is stored (in the case data and ``enterprise_case.tracking_hash``):
the plain token is returned once, to be shown to the enterprise or sent in its link, and a database leak
does not let anyone follow a case.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import false, literal, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from engine.clock import SHANGHAI
from engine.errors import FormValidationError, QifuError
from engine.forms import text_problem

from .models import BusinessKeyCounter, Category, Channel, EnterpriseCase, OrgUnit
from .reference import PHONE

PROCESSES: dict[str, str] = {"pan_an_station": "pan_an", "fenghua_one_place": "fenghua"}
PREFIX = {"pan_an": "PA", "fenghua": "FH"}
INTAKE_UNIT_KINDS = {"pan_an": ("station", "window", "county_window"), "fenghua": ("centre",)}
DEFAULT_UNIT = {"fenghua": "FH-CENTRE"}
LIMITS = {"enterprise_name": 100, "credit_code": 18, "contact_name": 50, "contact_phone": 20,
          "contact_id_number": 18, "title": 100, "description": 2000}
REQUIRED = {"enterprise_name": "企业名称", "contact_name": "联系人", "contact_phone": "联系电话", "description": "问题描述"}
LABELS = {**REQUIRED, "credit_code": "统一社会信用代码", "contact_id_number": "身份证号", "title": "标题"}
CREDIT_CODE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
ID_NUMBER = re.compile(r"^\d{17}[\dX]$")


@dataclass
class SubmittedCase:
    business_key: str
    tracking_token: str  # plain: shown once to the enterprise, never stored
    instance_id: int
    opened: list[str] = field(default_factory=list)
    status: str = "running"  # the instance's status after the start step (``running`` unless it ended at once)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def find_by_token(session: Session, token: str) -> EnterpriseCase | None:
    """The case an enterprise's tracking token belongs to (None for an unknown or empty token)."""
    if not token or not token.strip():
        return None
    return session.scalar(select(EnterpriseCase).where(EnterpriseCase.tracking_hash == token_hash(token)))


def _id_checksum_ok(number: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(number[:17], weights, strict=True))
    return "10X98765432"[total % 11] == number[17]


CODE_LABELS = {"unit": "受理单位", "channel": "受理渠道", "category": "问题分类"}


def _unreadable_fields(fields: dict[str, Any]) -> dict[str, str]:
    """A message per text field holding a character no text may hold (engine.forms.text_problem), checked
    before anything is stripped or looked up."""
    errors: dict[str, str] = {}
    for name, label in {**LABELS, **CODE_LABELS}.items():
        value = fields.get(name)
        problem = text_problem(str(value)) if value is not None else None
        if problem:
            errors[name] = f"{label}{problem}，请删除后重新提交"
    return errors


def _reference(session: Session, unit_code: str, channel_code: str, category_code: str
               ) -> tuple[Any, Any, Any]:
    """The unit, channel and category with these codes (None when unknown, or when the code is empty: then it
    is not sent at all), read in ONE query: a one-row base left-joined to each table on its unique code."""
    base = select(literal(1).label("one")).subquery()
    u, c, k = aliased(OrgUnit), aliased(Channel), aliased(Category)
    stmt = (select(u.code.label("u_code"), u.name.label("u_name"), u.active.label("u_active"),
                   u.region.label("u_region"), u.kind.label("u_kind"), c.code.label("c_code"),
                   c.name.label("c_name"), c.region.label("c_region"), c.mode.label("c_mode"),
                   k.code.label("k_code"), k.region.label("k_region"))
            .select_from(base)
            .outerjoin(u, u.code == literal(unit_code) if unit_code else false())
            .outerjoin(c, c.code == literal(channel_code) if channel_code else false())
            .outerjoin(k, k.code == literal(category_code) if category_code else false()))
    row = session.execute(stmt).one()
    unit = (SimpleNamespace(code=row.u_code, name=row.u_name, active=row.u_active, region=row.u_region,
                            kind=row.u_kind) if row.u_code is not None else None)
    channel = (SimpleNamespace(code=row.c_code, name=row.c_name, region=row.c_region, mode=row.c_mode)
               if row.c_code is not None else None)
    category = SimpleNamespace(code=row.k_code, region=row.k_region) if row.k_code is not None else None
    return unit, channel, category


def validate(session: Session, region: str, fields: dict[str, Any], channel_mode: str | None = None
             ) -> dict[str, Any]:
    """Clean case data from submitted fields, or :class:`FormValidationError` with a message per field.

    Unknown keys are dropped: a caller cannot set ``region``, ``received_at`` or ``tracking_hash``. Control
    characters are refused in every text field before anything else looks at it (the unit, channel and
    category codes are not even queried), so SQLite and PostgreSQL give the same answer.
    """
    errors = _unreadable_fields(fields)
    clean: dict[str, Any] = {}
    for name, limit in LIMITS.items():
        if name in errors:
            continue
        value = fields.get(name)
        text = "" if value is None else str(value).strip()
        if name in ("contact_phone",):
            text = re.sub(r"[\s()（）]", "", text)
        if name in ("credit_code", "contact_id_number"):
            text = text.upper()
        if not text:
            if name in REQUIRED:
                errors[name] = f"请填写{REQUIRED[name]}"
            continue
        if len(text) > limit:
            errors[name] = f"{LABELS[name]}过长（最多 {limit} 字，现 {len(text)} 字）"
            continue
        clean[name] = text
    if "contact_phone" in clean and not PHONE.match(clean["contact_phone"]):
        errors["contact_phone"] = "联系电话格式不正确（手机号 11 位，座机如 0574-88888718）"
    if "credit_code" in clean and not CREDIT_CODE.match(clean["credit_code"]):
        errors["credit_code"] = "统一社会信用代码应为 18 位数字或大写字母"
    if "contact_id_number" in clean and not (ID_NUMBER.match(clean["contact_id_number"])
                                             and _id_checksum_ok(clean["contact_id_number"])):
        errors["contact_id_number"] = "身份证号不正确（18 位，校验位不符）"
    if "description" in clean and "title" not in clean:
        clean["title"] = clean["description"].splitlines()[0][:30]

    unit_code = str(fields.get("unit") or DEFAULT_UNIT.get(region, "")).strip()
    channel_code = str(fields.get("channel") or "").strip()
    category_code = str(fields.get("category") or "").strip()
    unit, channel, category = _reference(session, unit_code if "unit" not in errors else "",
                                         channel_code if "channel" not in errors else "",
                                         category_code if "category" not in errors else "")
    if "unit" not in errors:
        if not unit_code:
            errors["unit"] = "请选择受理站点（窗口）"
        elif unit is None or not unit.active:
            errors["unit"] = f"未知的受理单位“{unit_code}”"
        elif unit.region != region or unit.kind not in INTAKE_UNIT_KINDS.get(region, ()):
            errors["unit"] = f"单位“{unit.name}”不是本区域的受理站点（窗口）"
        else:
            clean["unit"] = unit.code

    if "channel" not in errors:
        if not channel_code:
            errors["channel"] = "请选择受理渠道"
        elif channel is None or channel.region != region:
            errors["channel"] = f"未知的受理渠道“{channel_code}”"
        elif channel_mode and channel.mode != channel_mode:
            errors["channel"] = f"渠道“{channel.name}”不是{'线上' if channel_mode == 'online' else '线下'}渠道"
        else:
            clean["channel"] = channel.code

    if "category" in errors:  # already refused (a control character): not looked up
        pass
    elif category_code:
        if category is None or category.region not in (None, region):
            errors["category"] = f"未知的问题分类“{category_code}”"
        else:
            clean["category"] = category.code
    elif region == "fenghua":
        errors["category"] = "请选择问题分类"
    if errors:
        raise FormValidationError(errors)
    return clean


def next_business_key(session: Session, region: str, day: str) -> str:
    """The next ``PA-YYYYMMDD-NNNN`` of the day, counted in ``business_key_counter`` inside the caller's
    transaction (the start's): concurrent intakes wait for each other's counter row, and a start that is
    refused gives its number back with the rollback."""
    prefix = f"{PREFIX[region]}-{day}-"
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    table = BusinessKeyCounter.__table__
    stmt = insert(table).values(prefix=prefix, last=1)
    stmt = stmt.on_conflict_do_update(index_elements=[table.c.prefix], set_={"last": table.c.last + 1})
    number = session.execute(stmt.returning(table.c.last)).scalar_one()
    if number > 9999:
        raise QifuError(f"{day} 的业务编号已用尽")
    return f"{prefix}{number:04d}"


def submit_case(engine: Any, process_key: str, fields: dict[str, Any], *, actor: str | None = None,
                channel_mode: str | None = None, region: str | None = None,
                also: Callable[[Session, SubmittedCase], None] | None = None) -> SubmittedCase:
    """Validate, allocate a business key and start ``process_key``; returns the key and the plain token.

    ``engine`` is an :class:`engine.process_engine.ProcessEngine`. ``channel_mode`` (``online``/``offline``)
    restricts the channel, e.g. the intake API accepts online channels only. ``region`` is needed only for a
    process other than the two seed processes (tests). ``also`` runs in the start's transaction with the
    case as submitted: what it writes is committed with the case or not at all.
    """
    region = region or PROCESSES.get(process_key)
    if region not in PREFIX:
        raise QifuError(f"未知的流程“{process_key}”：无法确定所属区域")
    with engine.session() as session:
        data = validate(session, region, fields, channel_mode)
    token = secrets.token_urlsafe(18)
    now = engine.clock.now()
    data.update(region=region, received_at=now.isoformat(), tracking_hash=token_hash(token))
    day = now.astimezone(SHANGHAI).strftime("%Y%m%d")

    def with_case(session: Session, started: Any) -> None:
        ensure_on_ledger(session, started, data, process_key=process_key, actor=actor, now=now)
        if also is not None:
            also(session, SubmittedCase(started.business_key, token, started.instance_id, list(started.opened),
                                        started.status))

    result = engine.runtime.start(process_key, lambda session: next_business_key(session, region, day), data,
                                  actor=actor, also=with_case)
    return SubmittedCase(result.business_key, token, result.instance_id, list(result.opened), result.status)


def ledger_row(session: Session, instance_id: int) -> EnterpriseCase | None:
    """The ledger row of a case, taken from the session when this transaction wrote it (the start's
    ``ledger register`` step), else read: a start needs no second SELECT for the row it just added."""
    for obj in list(session.identity_map.values()) + list(session.new):
        if isinstance(obj, EnterpriseCase) and obj.instance_id == instance_id:
            return obj
    return session.scalar(select(EnterpriseCase).where(EnterpriseCase.instance_id == instance_id))


def ensure_on_ledger(session: Session, started: Any, data: dict[str, Any], *, process_key: str,
                     actor: str | None, now: Any) -> None:
    """Every accepted problem is on the service ledger (PA-7): a diagram without the 登记台账 step gets its
    row here, in the start's transaction, exactly as the ``ledger`` handler would write it."""
    if ledger_row(session, started.instance_id) is not None:
        return
    from engine.services import ServiceCall

    from .ledger import register

    register(ServiceCall(topic="ledger", params={"action": "register"}, data=data, session=session,
                         instance_id=started.instance_id, business_key=started.business_key, task_id="",
                         element_id="受理登记", actor=actor, now=now, calendar=None, process_key=process_key))
