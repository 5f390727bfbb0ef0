"""Who may see and change which case: the one rule (docs/domain.md "Case visibility"), in two forms.

:func:`may_see_case` decides for one case (the case page, a task, a download); :func:`visible_cases` is the
same rule as a SQL condition over the ledger (``enterprise_case``), for every list and export. A test holds
the two against each other on generated cases, so a page can never show what the case page refuses.

A case the user may not see answers exactly like a case that does not exist (404): a probe learns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, exists, false, or_, select, union_all

from handlers.models import CaseUnit, EnterpriseCase

# Roles that see every case of their region.
REGION_WIDE_ROLES = frozenset({"兜底服务板块", "企服专班", "领导小组", "中心工作人员", "督办", "审计", "管理员"})
# Roles that may look but never change a case (no uploads, claims or completions).
READ_ONLY_ROLES = frozenset({"审计"})
# Roles that may reveal a contact's full number of any case they see (besides its own unit's staff): always
# with a reason, which is logged (web/views/cases.py; the log is on the verification page).
UNMASK_ROLES = frozenset({"管理员", "督办", "审计"})


class Viewer(Protocol):
    unit: str | None
    region: str | None
    roles: frozenset[str]


@dataclass(frozen=True)
class CaseScope:
    """What visibility needs to know about a case: its accepting unit, region and involved units."""

    business_key: str
    instance_id: int
    unit: str | None
    region: str | None
    involved_units: frozenset[str] = field(default_factory=frozenset)


def sees_region(user: Viewer) -> bool:
    """Whether the user holds a role that sees every case of their region."""
    return bool(user.roles & REGION_WIDE_ROLES) and user.region is not None


def may_see_case(user: Viewer, case: CaseScope) -> bool:
    """Own unit, an involved unit, or a region-wide role of the case's region."""
    if case.unit and case.unit == user.unit:
        return True
    if user.unit and user.unit in case.involved_units:
        return True
    return sees_region(user) and case.region is not None and case.region == user.region


def is_read_only(user: Viewer) -> bool:
    """Auditors look; they never change a case (a user holding only read-only roles)."""
    return bool(user.roles) and user.roles <= READ_ONLY_ROLES


def may_change_case(user: Viewer, case: CaseScope) -> bool:
    """Add to a case (attachments): visible, and the user is not read-only."""
    return may_see_case(user, case) and not is_read_only(user)


def may_unmask(user: Viewer, case: CaseScope) -> bool:
    """Full phone and ID numbers, on request with a reason: staff of the case's own (accepting) unit, and
    administrators, supervisors and auditors who see the case."""
    if not may_see_case(user, case):
        return False
    return (case.unit is not None and case.unit == user.unit) or bool(user.roles & UNMASK_ROLES)


def visible_cases(user: Viewer, case: Any = EnterpriseCase) -> ColumnElement[bool]:
    """:func:`may_see_case` as a condition on ``enterprise_case`` rows (``case``: the table or an alias)."""
    own: list[ColumnElement[bool]] = []
    if sees_region(user):  # first: a region's rows are decided here, before any probe of case_unit
        own.append(case.region == user.region)
    if user.unit:
        own.append(case.unit == user.unit)
        own.append(exists(select(CaseUnit.id).where(CaseUnit.case_id == case.id, CaseUnit.unit_code == user.unit)))
    return or_(*own) if own else false()


def visible_instance_ids(user: Viewer) -> Select[Any]:
    """:func:`visible_cases` as the set of the visible cases' instance ids, each part found by an index (the
    region's cases, the unit's own, the cases it is involved in): a list of a unit's cases is built from
    those few rows instead of testing every case. Duplicates may occur (an ``IN`` does not mind)."""
    ec = EnterpriseCase
    parts: list[Select[Any]] = []
    if sees_region(user):
        parts.append(select(ec.instance_id).where(ec.region == user.region))
    if user.unit:
        parts.append(select(ec.instance_id).where(ec.unit == user.unit))
        parts.append(select(ec.instance_id).join(CaseUnit, CaseUnit.case_id == ec.id)
                     .where(CaseUnit.unit_code == user.unit))
    if not parts:
        return select(ec.instance_id).where(false())
    return parts[0] if len(parts) == 1 else select(union_all(*parts).subquery().c[0])


def scope_of(case: EnterpriseCase) -> CaseScope:
    """The scope of a ledger row (its units are loaded on access)."""
    return CaseScope(case.business_key, case.instance_id, case.unit, case.region,
                     frozenset(cu.unit_code for cu in case.units))
