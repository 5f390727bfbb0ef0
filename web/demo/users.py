"""Demo users for ``qifu init --demo``: one per role of docs/domain.md, each in a unit of its region.

The README lists this table; tests log in with the same accounts. Passwords are for demonstrations only —
a real installation creates its users with ``qifu user add NAME --unit U --role R --password-stdin``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

DEMO_PASSWORD = "qifu-demo-2026"


@dataclass(frozen=True)
class DemoUser:
    username: str
    display_name: str
    unit: str
    roles: tuple[str, ...]
    password: str = DEMO_PASSWORD


DEMO_USERS: tuple[DemoUser, ...] = (
    # Pan'an: station PA01 (one window, 1+3+N panels), a second station for contrast, the county centre
    DemoUser("pa_accept", "综合受理（站一）", "PA01", ("综合受理板块",)),
    DemoUser("pa_agent", "代办服务（站一）", "PA01", ("代办服务板块",)),
    DemoUser("pa_appeal", "诉求服务（站一）", "PA01", ("诉求服务板块",)),
    DemoUser("pa_office", "企业综合服务办公室（站一）", "PA01", ("企业综合服务办公室",)),
    DemoUser("pa_invest", "招商服务板块（站一）", "PA01", ("招商服务板块",)),
    DemoUser("pa_plan", "规划建设服务板块（站一）", "PA01", ("规划建设服务板块",)),
    DemoUser("pa_econ", "经济发展服务板块（站一）", "PA01", ("经济发展服务板块",)),
    DemoUser("pa2_accept", "综合受理（站二）", "PA02", ("综合受理板块",)),
    DemoUser("pa_fallback", "兜底服务板块（县难事办理窗口）", "PA-COUNTY", ("兜底服务板块",)),
    DemoUser("pa_super", "督办（磐安）", "PA-COUNTY", ("督办",)),
    # Fenghua: the 8718 centre, the special team, a handling unit, the leading group
    DemoUser("fh_staff", "中心工作人员", "FH-CENTRE", ("中心工作人员",)),
    DemoUser("fh_team", "企服专班", "FH-CENTRE", ("企服专班",)),
    DemoUser("fh_unit", "承办单位（区经信局）", "FH-JXJ", ("承办单位",)),
    DemoUser("fh_leader", "领导小组", "FH-LG", ("领导小组",)),
    DemoUser("fh_super", "督办（奉化）", "FH-CENTRE", ("督办",)),
    # across regions
    DemoUser("auditor", "审计", "FH-CENTRE", ("审计",)),
    DemoUser("admin", "系统管理员", "FH-CENTRE", ("管理员",)),
    DemoUser("designer", "流程设计", "FH-CENTRE", ("流程设计",)),
)


def create_demo_users(session: Session, now=None) -> int:  # datetime
    """Create the demo users that do not exist yet (existing ones are left alone). Returns how many."""
    from web.auth import add_user, find_user

    created = 0
    for demo in DEMO_USERS:
        if find_user(session, demo.username) is not None:
            continue
        add_user(session, demo.username, demo.password, unit=demo.unit, roles=list(demo.roles),
                 display_name=demo.display_name, now=now)
        created += 1
    return created
