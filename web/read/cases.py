"""A case as the pages show it: the instance (from the runtime service) with its ledger row (the business view).

Visibility comes from the ledger row alone (unit, region, involved units), so the case page and every list
apply one rule (:mod:`web.scope`). Every case that intake starts is on the ledger (PA-7); a case started some
other way (``qifu case start``) has no row and is shown to nobody in the browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.process_engine import ProcessEngine
from engine.runtime import InstanceView
from handlers.models import CaseUnit, EnterpriseCase

from ..labels import CodeNames
from ..scope import CaseScope


@dataclass
class CaseSummary:
    instance: InstanceView
    ledger: EnterpriseCase | None
    scope: CaseScope
    unit_name: str | None = None
    category_name: str | None = None
    channel_name: str | None = None
    involved: list[tuple[str, str, str]] = field(default_factory=list)  # (unit code, unit name, role)

    @property
    def business_key(self) -> str:
        return self.instance.business_key

    @property
    def process_key(self) -> str:
        return self.instance.process_key

    @property
    def process_name(self) -> str | None:
        return self.instance.process_name

    @property
    def data(self) -> dict[str, Any]:
        return self.instance.data

    @property
    def category(self) -> str | None:
        return (self.ledger.category if self.ledger else None) or self.data.get("category")

    @property
    def channel(self) -> str | None:
        return (self.ledger.channel if self.ledger else None) or self.data.get("channel")

    @property
    def title(self) -> str:
        value = (self.ledger.title if self.ledger else None) or self.data.get("title") or \
            self.data.get("description") or ""
        return str(value)

    @property
    def enterprise_name(self) -> str:
        return str((self.ledger.enterprise_name if self.ledger else None) or self.data.get("enterprise_name") or "")

    def value(self, name: str) -> Any:
        """A business field: the ledger row's column when there is one, else the case data."""
        if self.ledger is not None and hasattr(EnterpriseCase, name):
            got = getattr(self.ledger, name)
            if got is not None:
                return got
        return self.data.get(name)


def case_summaries(engine: ProcessEngine, session: Session, instance_ids: list[int],
                   codes: CodeNames | None = None) -> dict[int, CaseSummary]:
    """Summaries of a page of cases: their instances, ledger rows and involved units, in a few queries."""
    instances = engine.runtime.instances(instance_ids)
    if not instances:
        return {}
    ids = list(instances)
    ledgers = {c.instance_id: c for c in session.scalars(select(EnterpriseCase)
                                                         .where(EnterpriseCase.instance_id.in_(ids)))}
    involved: dict[int, list[tuple[str, str]]] = {}
    if ledgers:
        by_case = {c.id: c.instance_id for c in ledgers.values()}
        for cu in session.scalars(select(CaseUnit).where(CaseUnit.case_id.in_(list(by_case))).order_by(CaseUnit.id)):
            involved.setdefault(by_case[cu.case_id], []).append((cu.unit_code, cu.role))
    codes = codes or CodeNames.load(session)
    out: dict[int, CaseSummary] = {}
    for iid, instance in instances.items():
        ledger = ledgers.get(iid)
        inv = involved.get(iid, [])
        scope = CaseScope(instance.business_key, iid, ledger.unit if ledger else None,
                          ledger.region if ledger else None, frozenset(c for c, _ in inv))
        summary = CaseSummary(instance, ledger, scope)
        unit = scope.unit or ""
        summary.unit_name = codes.short_units.get(unit, unit) if unit else None
        summary.category_name = codes.categories.get(summary.category or "", summary.category)
        summary.channel_name = codes.channels.get(summary.channel or "", summary.channel)
        summary.involved = [(c, codes.short_units.get(c, c), r) for c, r in inv]
        out[iid] = summary
    return out


def case_by_key(engine: ProcessEngine, session: Session, business_key: str) -> CaseSummary | None:
    instance = engine.runtime.instance(business_key)
    if instance is None:
        return None
    return case_summaries(engine, session, [instance.id]).get(instance.id)
