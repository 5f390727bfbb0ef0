"""Reference data: units (PA-1, FH-9), categories (FH-1) and channels (FH-2), loaded from ``reference/*.json``.

The data is kept as UTF-8 JSON files beside this module, copied from the seed documents (the Chinese
originals win): a reviewer compares a file with the document, not code. :func:`load_reference` is an
idempotent upsert by code, run by ``qifu init`` and by the tests:

- rows missing from the database are inserted;
- reference-owned fields (name, address, phone, kind, …) are refreshed from the files, except fields an
  administrator changed (listed in ``org_unit.edited`` by :func:`set_unit`);
- the liaison (联络员 name and phone, FH-9) is administrative data: the files leave it empty, and loading
  never overwrites a liaison already in the database;
- the files name no person: the leading group's seats (``group_member``) are role titles (区科技局负责人),
  not the names Annex 2 of the Fenghua plan lists — those are not needed to run a case and go out of date.
  Loading refreshes the field, so an install seeded with the names gets the titles at its next ``qifu init``.

Station or window (PA-1): the document's rule and how each row applies it are in ``units.json``
(``_station_rule`` and each unit's ``note``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import QifuError

from .models import REGIONS, UNIT_KINDS, Category, Channel, OrgUnit

DATA_DIR = Path(__file__).with_name("reference")
UNIT_FIELDS = ("name", "short_name", "kind", "region", "address", "phone", "resident", "group_role", "group_member",
               "note", "sort")
PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(-\d{1,6})?|\d{7,8})$")
MAX_UNIT_NAME = 100  # the longest name of the annexes is 21 characters
MAX_LIAISON_NAME = 50
MAX_ADDRESS = 300  # the width of org_unit.address
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


def read(name: str) -> dict[str, Any]:
    """One reference file as parsed JSON."""
    return json.loads((DATA_DIR / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class LoadReport:
    units: int
    categories: int
    channels: int
    inserted: int
    updated: int

    def summary(self) -> str:
        return (f"参考数据：单位 {self.units} 个，问题分类 {self.categories} 个，受理渠道 {self.channels} 个"
                f"（新增 {self.inserted}，更新 {self.updated}）")


def _upsert(session: Session, model: type, rows: list[dict[str, Any]], fields: tuple[str, ...]) -> tuple[int, int]:
    existing = {row.code: row for row in session.scalars(select(model))}
    inserted = updated = 0
    for data in rows:
        row = existing.get(data["code"])
        if row is None:
            row = model(code=data["code"], **{f: data.get(f) for f in fields if f in data})
            if model is OrgUnit:
                row.resident = bool(data.get("resident", False))
                row.active = True
                row.edited = ""
                row.sort = data.get("sort", 0)
            session.add(row)
            inserted += 1
            continue
        edited = set(filter(None, (getattr(row, "edited", "") or "").split(",")))
        changed = False
        for f in fields:
            if f in edited:
                continue
            value = data.get(f, False if f == "resident" else None)
            if f == "sort" and value is None:
                value = 0
            if getattr(row, f) != value:
                setattr(row, f, value)
                changed = True
        updated += changed
    return inserted, updated


def load_reference(session: Session) -> LoadReport:
    """Insert or refresh units, categories and channels from the files; never touches liaison fields."""
    units = read("units")["units"]
    for data in units:
        if data["kind"] not in UNIT_KINDS or data["region"] not in REGIONS:
            raise QifuError(f"参考数据错误：单位 {data['code']} 的类型或区域无效")
    categories = read("categories")["categories"]
    channels = read("channels")["channels"]
    counts = [_upsert(session, OrgUnit, units, UNIT_FIELDS),
              _upsert(session, Category, categories, ("name", "parent_code", "region", "sort")),
              _upsert(session, Channel, channels, ("name", "mode", "region", "detail", "sort"))]
    session.flush()
    return LoadReport(len(units), len(categories), len(channels), sum(c[0] for c in counts),
                      sum(c[1] for c in counts))


def set_unit(session: Session, code: str, *, liaison_name: str | None = None, liaison_phone: str | None = None,
             kind: str | None = None, phone: str | None = None, address: str | None = None,
             active: bool | None = None, name: str | None = None) -> OrgUnit:
    """An administrator's edit of one unit (``qifu unit set``, admin pages). Edited reference fields are
    remembered so a later :func:`load_reference` keeps them. Empty text clears a liaison field, the unit's
    phone or address; a unit keeps a name. Everything is checked before anything is set."""
    row = session.scalar(select(OrgUnit).where(OrgUnit.code == code))
    if row is None:
        raise QifuError(f"未知的单位编码“{code[:40]}”")
    if kind is not None and kind not in UNIT_KINDS:
        raise QifuError(f"单位类型“{kind[:20]}”无效，应为 {' / '.join(UNIT_KINDS)}")
    for value, what in ((name, "单位名称"), (liaison_name, "联络员"), (liaison_phone, "联络员电话"), (phone, "单位电话"),
                        (address, "单位地址")):
        if value is not None and _CONTROL.search(value):
            raise QifuError(f"{what}含有控制字符或不可见字符")
    if name is not None and not name.strip():
        raise QifuError("单位名称不能为空")
    if name is not None and len(name.strip()) > MAX_UNIT_NAME:
        raise QifuError(f"单位名称过长（最多 {MAX_UNIT_NAME} 字）")
    for value, what in ((liaison_phone, "联络员电话"), (phone, "单位电话")):
        if value and value.strip() and not PHONE.match(value.strip()):
            raise QifuError(f"{what}格式不正确：“{value[:30]}”（手机号 11 位，座机如 0574-88888718）")
    if liaison_name is not None and len(liaison_name.strip()) > MAX_LIAISON_NAME:
        raise QifuError(f"联络员过长（最多 {MAX_LIAISON_NAME} 字）")
    if address is not None and len(address.strip()) > MAX_ADDRESS:
        raise QifuError(f"单位地址过长（最多 {MAX_ADDRESS} 字）")
    edited = set(filter(None, (row.edited or "").split(",")))
    if liaison_name is not None:
        row.liaison_name = liaison_name.strip() or None
    if liaison_phone is not None:
        row.liaison_phone = liaison_phone.strip() or None
    # a reference field is pinned only when the edit changes it: saving a form unchanged pins nothing
    for field, value in (("name", name), ("kind", kind), ("phone", phone), ("address", address)):
        if value is not None and (value.strip() or None) != getattr(row, field):
            setattr(row, field, value.strip() or None)
            edited.add(field)
    if active is not None:
        row.active = active
    row.edited = ",".join(sorted(edited))
    session.flush()
    return row


def units(session: Session, region: str | None = None, kinds: tuple[str, ...] | None = None) -> list[OrgUnit]:
    """Active units, optionally of one region and some kinds, in display order (for forms and pages)."""
    query = select(OrgUnit).where(OrgUnit.active.is_(True))
    if region:
        query = query.where(OrgUnit.region == region)
    if kinds:
        query = query.where(OrgUnit.kind.in_(kinds))
    return list(session.scalars(query.order_by(OrgUnit.region, OrgUnit.sort, OrgUnit.code)))


def categories(session: Session, region: str | None = None) -> list[Category]:
    query = select(Category)
    if region:
        query = query.where((Category.region.is_(None)) | (Category.region == region))
    return list(session.scalars(query.order_by(Category.sort)))


def channels(session: Session, region: str | None = None, mode: str | None = None) -> list[Channel]:
    query = select(Channel)
    if region:
        query = query.where(Channel.region == region)
    if mode:
        query = query.where(Channel.mode == mode)
    return list(session.scalars(query.order_by(Channel.sort)))
