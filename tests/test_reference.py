"""Reference data (PA-1 stations, FH-9 "1+X" organisation, FH-1 categories, FH-2 channels), checked against
the seed documents, idempotent reloads that keep an administrator's edits, and ``qifu unit set``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.errors import QifuError
from handlers import reference
from handlers.models import Category, Channel, OrgUnit

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def _seed(prefix: str) -> str | None:
    found = sorted(SEEDS.glob(f"{prefix}_*.txt")) if SEEDS.is_dir() else []
    return found[0].read_text(encoding="utf-8") if found else None


def units(engine, **filters) -> dict[str, OrgUnit]:
    with engine.session() as s:
        query = select(OrgUnit)
        for name, value in filters.items():
            query = query.where(getattr(OrgUnit, name) == value)
        rows = list(s.scalars(query))
        s.expunge_all()
    return {u.code: u for u in rows}


@pytest.mark.req("PA-1")
def test_the_fifteen_pan_an_stations_match_annex_2(case_engine) -> None:
    stations = {c: u for c, u in units(case_engine, region="pan_an").items() if re.fullmatch(r"PA\d\d", c)}
    assert sorted(stations) == [f"PA{n:02d}" for n in range(1, 16)]
    assert stations["PA01"].name == "安文街道企业服务站（窗口）"
    assert (stations["PA01"].address, stations["PA01"].phone) == ("安文街道双溪路 128 号", "0579-84661160")
    assert stations["PA15"].address == "婺城区金磐路 928 号金磐商务大楼 1307 室"
    assert {u.kind for u in stations.values()} == {"station", "window"}
    # the rule of 二（一）: 区块 (13–15) are stations, 乡 windows, 街道/镇 stations; each row says why
    assert [c for c, u in sorted(stations.items()) if u.kind == "window"] == ["PA08", "PA09", "PA10", "PA11", "PA12"]
    assert all(u.note for u in stations.values())
    text = _seed("000")
    if text is None:
        pytest.skip("seed document not available")
    table = re.findall(r"^(\d+)\t(.+?)\t(.+?)\t(0579-\d+)\s*$", text, re.M)
    assert len(table) == 15
    for number, name, address, phone in table:
        unit = stations[f"PA{int(number):02d}"]
        assert (unit.name, unit.address, unit.phone) == (name, address, phone)


@pytest.mark.req("PA-5")
def test_the_county_window_exists_for_escalation(case_engine) -> None:
    [county] = units(case_engine, kind="county_window").values()
    assert county.code == "PA-COUNTY" and county.region == "pan_an" and "难事办理窗口" in county.name


@pytest.mark.req("FH-9")
def test_the_1_plus_x_organisation_of_annex_2(case_engine) -> None:
    fh = units(case_engine, region="fenghua")
    resident = sorted(u.name for u in fh.values() if u.resident)
    assert resident == sorted(["区委人才办", "区经信局", "区科技局", "区金融发展服务中心", "区自然资源规划分局", "区税务局"])
    assert {u.kind for u in fh.values() if u.resident} == {"special_team"}
    assert fh["FH-LG"].kind == "leading_group" and fh["FH-LG"].group_member == "分管区领导"
    assert fh["FH-CENTRE"].kind == "centre" and fh["FH-CENTRE"].phone == "0574-88888718"
    assert all(u.liaison_name is None and u.liaison_phone is None for u in fh.values())  # typed in by an admin
    towns = sorted(u.name for u in fh.values() if u.kind == "town")
    assert len(towns) == 12 and "溪口镇人民政府" in towns and "锦屏街道办事处" in towns
    text = _seed("001")
    if text is None:
        pytest.skip("seed document not available")
    members = text.split("成  员：", 1)[1].split("附件3", 1)[0]
    listed = re.findall(r"^\s*(.+?)\s+(\S+)\s*$", members, re.M)  # "李  勇  区发改局"
    assert len(listed) == 40
    by_name = {u.name: u for u in fh.values()}
    for _person, unit_name in listed:  # every member unit of Annex 2 has its seat, by role title
        unit = by_name.get(unit_name)
        assert unit is not None, unit_name
        assert unit.group_member and unit.group_member.startswith(unit_name), (unit_name, unit.group_member)
        assert unit.resident == (unit_name in resident)
        assert unit.kind in ("special_team", "department", "town")
    deputies = text.split("副组长：", 1)[1].split("成  员：", 1)[0]
    for _person, unit_name in re.findall(r"^\s*(.+?)\s+(\S+)\s*$", deputies, re.M):
        unit = by_name[unit_name]
        assert "副组长" in (unit.group_role or "") + (unit.group_member or ""), unit_name


@pytest.mark.req("FH-9")
def test_no_personal_name_of_the_annex_is_in_the_reference_data() -> None:
    """The 43 people Annex 2 of the Fenghua plan names (组长, 2 副组长, 40 成员) are not needed to run a case
    and go out of date: the reference data names each seat by its role title (区科技局负责人) instead."""
    text = _seed("001")
    if text is None:
        pytest.skip("seed document not available")
    annex = text.split("奉化区企业服务工作领导小组成员名单", 2)[2].split("附件3", 1)[0]
    leader = re.findall(r"组  长：\s*(\S+)", annex)
    seats = re.findall(r"^\s*(?:副组长：|成  员：)?\s*([^\s：]+?(?:\s{1,2}[^\s：])?)\s{2,}([^\s：]+)\s*$", annex,
                       re.M)  # "李  勇  区发改局": the name, then the unit
    names = {n.replace(" ", "") for n in leader} | {person.replace(" ", "") for person, _ in seats}
    assert len(names) == 43, sorted(names)
    data = (reference.DATA_DIR / "units.json").read_text(encoding="utf-8")
    assert [n for n in sorted(names) if n in data] == []


@pytest.mark.req("FH-1")
def test_categories_of_fh_1(case_engine) -> None:
    with case_engine.session() as s:
        rows = list(s.scalars(select(Category).order_by(Category.sort)))
    tops = [c for c in rows if c.parent_code is None]
    assert [c.name for c in tops] == ["要素保障", "政策咨询", "专项服务", "其他"]
    subs = {t.name: [c.name for c in rows if c.parent_code == t.code] for t in tops}
    assert subs == {"要素保障": ["土地", "厂房", "水", "电", "气", "道路", "排污", "人才", "融资", "市场"],
                    "政策咨询": ["产业", "人才", "降本减负"],
                    "专项服务": ["技术开发", "品牌管理", "会计事务", "法律法务", "涉企公共服务"], "其他": []}


@pytest.mark.req("FH-2", "PA-2")
def test_channels_of_fh_2_and_pan_an(case_engine) -> None:
    with case_engine.session() as s:
        rows = {c.code: c for c in s.scalars(select(Channel))}
    offline = sorted(c.name for c in rows.values() if c.region == "fenghua" and c.mode == "offline")
    assert offline == sorted(["奉化8718平台服务窗口", "驻企专员", "企服专班", "企业家座谈会", "工业协会、商会"])
    assert rows["hotline"].mode == "online" and rows["hotline"].detail == "0574-88888718"
    online = {c.code for c in rows.values() if c.region == "fenghua" and c.mode == "online"}
    assert {"hotline", "pc_platform", "wechat_account", "yongqima", "wechat_group", "qiyema"} <= online
    assert {(c.code, c.name) for c in rows.values() if c.region == "pan_an"} == {("visit", "企业走访"),
                                                                               ("walk_in", "来站反映")}


@pytest.mark.req("FH-9")
def test_reload_is_idempotent_and_keeps_admin_edits(case_engine) -> None:
    with case_engine.session() as s:
        again = reference.load_reference(s)
        assert (again.inserted, again.updated) == (0, 0)
        reference.set_unit(s, "FH-JXJ", liaison_name="张三", liaison_phone="13900001111")
        reference.set_unit(s, "PA08", kind="station")  # the township got an industrial park
        s.scalar(select(OrgUnit).where(OrgUnit.code == "PA01")).name = "被误改的名称"
    with case_engine.session() as s:
        report = reference.load_reference(s)
        assert (report.inserted, report.updated) == (0, 1)  # only the mistyped name is restored
    fh, pa = units(case_engine, code="FH-JXJ")["FH-JXJ"], units(case_engine, region="pan_an")
    assert (fh.liaison_name, fh.liaison_phone) == ("张三", "13900001111")
    assert pa["PA08"].kind == "station" and pa["PA01"].name == "安文街道企业服务站（窗口）"
    total = sum(1 for _ in reference.read("units")["units"])
    assert len(units(case_engine)) == total


def test_set_unit_validates(case_engine) -> None:
    with case_engine.session() as s:
        with pytest.raises(QifuError, match="未知的单位编码"):
            reference.set_unit(s, "NOPE", liaison_name="x")
        with pytest.raises(QifuError, match="联络员电话格式不正确"):
            reference.set_unit(s, "FH-JXJ", liaison_phone="12")
        with pytest.raises(QifuError, match="单位类型“shop”无效"):
            reference.set_unit(s, "FH-JXJ", kind="shop")


@pytest.mark.req("FH-9")
def test_cli_unit_set_and_list(case_engine, monkeypatch) -> None:
    from web.cli import main

    monkeypatch.setenv("QIFU_DATABASE_URL", case_engine.url)
    runner = CliRunner()
    result = runner.invoke(main, ["unit", "set", "FH-KJJ", "--liaison", "李四", "--phone", "0574-88001234"])
    assert result.exit_code == 0, result.output
    assert "李四" in result.output
    bad = runner.invoke(main, ["unit", "set", "FH-KJJ", "--phone", "abc"])
    assert bad.exit_code == 2 and "格式不正确" in bad.output
    listed = runner.invoke(main, ["--json", "unit", "list", "--region", "fenghua", "--kind", "special_team"])
    rows = json.loads(listed.output)
    assert len(rows) == 6 and {r["code"]: r["liaison_name"] for r in rows}["FH-KJJ"] == "李四"
    kj = units(case_engine, code="FH-KJJ")["FH-KJJ"]
    assert (kj.liaison_name, kj.liaison_phone) == ("李四", "0574-88001234")


@pytest.mark.req("PA-1", "FH-9")
def test_qifu_init_loads_the_reference_data(db_url, monkeypatch) -> None:
    from web.cli import main

    monkeypatch.setenv("QIFU_DATABASE_URL", db_url)
    first = CliRunner().invoke(main, ["init"])
    assert first.exit_code == 0, first.output
    total = len(reference.read("units")["units"])
    assert f"单位 {total} 个" in first.output and "问题分类 22 个" in first.output and "受理渠道 14 个" in first.output
    again = CliRunner().invoke(main, ["init"])
    assert "（新增 0，更新 0）" in again.output
