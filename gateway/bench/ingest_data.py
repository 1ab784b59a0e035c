"""A synthetic regional export for the mappings, as a contract system would send it: one
district's institutions, staff, "1+1+1" teams, residents (in households) and contracts, with
valid ID numbers and credit codes (GB 11643, GB 32100 / GB 11714 check characters).

The region is Zhengzhou Zhongyuan (410102): three-year contracts (36 months, 000 §三.1), teams
with internal medicine, surgery, gynaecology and a public-health physician (000 §二), far
below 1,500 households per team. Every resident has one contract in force at a time. Used by
the end-to-end import test and the $ingest benchmark; `bad_contracts` spoils chosen rows in
the ways real exports go wrong, and says what each should be rejected for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from gateway.validation.checksums import id_card_check_char, org_code_check_char, uscc_check_char

DIVISION = "410102"
TEMPLATE = "https://jtys.example.cn/agreements/template-410102-2026.pdf"
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华"
# (role, specialty, sex) of a 1+1+1 team's members; the first is its family doctor.
MEMBERS = (
    ("全科医生", "03", "男"),
    ("专科医生", "04", "男"),
    ("专科医生", "05.01", "女"),
    ("公卫医师", "01", "女"),
    ("护士", "", "女"),
)


def id_card(division: str, born: date, serial: int, male: bool) -> str:
    sex_digit = (serial * 2 + (1 if male else 0)) % 10
    body = f"{division}{born:%Y%m%d}{serial % 100:02d}{sex_digit}"
    return body + id_card_check_char(body)


def uscc(division: str, serial: int) -> str:
    org = f"4{serial:07d}"
    first = f"12{division}{org}{org_code_check_char(org)}"
    return first + uscc_check_char(first)


@dataclass
class World:
    institutions: list[dict[str, Any]] = field(default_factory=list)
    practitioners: list[dict[str, Any]] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)
    residents: list[dict[str, Any]] = field(default_factory=list)
    contracts: list[dict[str, Any]] = field(default_factory=list)


def world(residents: int = 1000, teams: int = 20, seed: int = 7, start: int = 1) -> World:
    """`start` offsets every number, so that several worlds never share a business key."""
    rnd = random.Random(seed)
    w = World()
    per_institution = 5
    for t in range(teams):
        if t % per_institution == 0:
            w.institutions.append(_institution(start + t // per_institution))
        org = w.institutions[-1]["统一社会信用代码"]
        members = []
        for m, (role, specialty, sex) in enumerate(MEMBERS):
            staff = _practitioner(rnd, org, f"G{start + t:04d}{m}", role, specialty, sex)
            w.practitioners.append(staff)
            members.append(
                {
                    "工号": staff["工号"],
                    "姓名": staff["姓名"],
                    "角色": role,
                    "专业": specialty,
                    "执业机构": org,
                    "第一责任人": "是" if m == 0 else "否",
                }
            )
        w.teams.append(
            {
                "团队编号": f"{DIVISION}-T{start + t:04d}",
                "名称": f"{members[0]['姓名']}家庭医生团队",
                "模式": "1+1+1",
                "所属机构统一社会信用代码": org,
                "成立日期": "2024-01-01",
                "成员": members,
            }
        )
    for r in range(residents):
        w.residents.append(_resident(rnd, start + r))
    for r, resident in enumerate(w.residents):
        team = w.teams[r % teams]
        w.contracts.append(_contract(start + r, resident, team))
    return w


def _institution(serial: int) -> dict[str, Any]:
    return {
        "机构名称": f"郑州市中原区第{serial}社区卫生服务中心",
        "统一社会信用代码": uscc(DIVISION, serial),
        "机构类别": "社区卫生服务中心",
        "机构级别": "一级甲等",
        "行政区划代码": DIVISION,
        "地址": f"河南省郑州市中原区建设西路{serial}号",
        "联系电话": "0371-67650000",
    }


def _name(rnd: random.Random) -> str:
    return rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2))))


def _practitioner(
    rnd: random.Random, org: str, staff: str, role: str, specialty: str, sex: str
) -> dict[str, Any]:
    serial = int(staff[1:])
    born = date(1975, 1, 1) + timedelta(days=serial * 53 % 6000)  # distinct per staff member
    return {
        "工号": staff,
        "执业机构": org,
        "姓名": _name(rnd),
        "性别": sex,
        "出生日期": born.isoformat(),
        "身份证号": id_card(DIVISION, born, serial, sex == "男"),
        "角色": role,
        "专业": specialty,
    }


def _resident(rnd: random.Random, serial: int) -> dict[str, Any]:
    male = serial % 2 == 0
    born = date(1940, 1, 1) + timedelta(days=serial * 37 % 28000)  # distinct: no shared ID
    household = (serial - 1) // 3  # three to a household: the first is its head
    head = (serial - 1) % 3 == 0
    record = {
        "姓名": _name(rnd),
        "性别": "男" if male else "女",
        "出生日期": born.strftime("%Y/%m/%d"),
        "身份证号": id_card(DIVISION, born, serial, male),
        "联系电话": f"139{serial:08d}",
        "现住址": f"河南省郑州市中原区伏牛路{serial}号",
        "行政区划代码": DIVISION,
        "健康档案编号": f"{DIVISION}001001{serial:05d}"[:17],
        "家庭编号": f"{DIVISION}001001{household:06d}",
        "与户主关系": "户主" if head else ("配偶" if (serial - 1) % 3 == 1 else "子"),
    }
    if born < date(1961, 12, 3):
        record["人群分类"] = "65岁及以上老年人"
    return record


def _contract(serial: int, resident: dict[str, Any], team: dict[str, Any]) -> dict[str, Any]:
    doctor = team["成员"][0]
    return {
        "签约编号": f"QY{DIVISION}2026{serial:06d}",
        "签约类型": "新签",
        "证件号码": resident["身份证号"],
        "居民姓名": resident["姓名"],
        "签约机构": team["所属机构统一社会信用代码"],
        "团队编号": team["团队编号"],
        "责任医生工号": doctor["工号"],
        "责任医生姓名": doctor["姓名"],
        "签约日期": "2025-12-20 09:30",
        "开始日期": "2026-01-01",
        "到期日期": "2028-12-31",
        "状态": "已签约",
        "服务包": "基本医疗服务包",
        "签约方式": "现场签约",
        "医保授权": "是",
        "协议模板": TEMPLATE,
    }


# What each spoilt row should be rejected for: (the field named, a fragment of the message).
SPOILERS: dict[str, tuple[str | None, str]] = {
    "missing-id": ("证件号码", "required"),
    "bad-date": ("开始日期", "not a calendar date"),
    "unknown-sign-type": ("签约类型", "unknown code"),
    "unknown-resident": ("证件号码", "matches 0 resources"),
    "revoked-without-reason": ("解约原因", "required"),
    "second-contract": (None, "active"),
}


def bad_contracts(w: World, every: int = 50) -> dict[int, str]:
    """Spoil every `every`-th contract (numbers from 1), cycling through SPOILERS; returns
    record number → spoiler. A second contract is added for a resident who has one."""
    kinds = list(SPOILERS)
    spoilt: dict[int, str] = {}
    for n, i in enumerate(range(every - 1, len(w.contracts), every)):
        kind = kinds[n % len(kinds)]
        c = w.contracts[i]
        if kind == "missing-id":
            del c["证件号码"]
        elif kind == "bad-date":
            c["开始日期"] = "2026-13-01"
        elif kind == "unknown-sign-type":
            c["签约类型"] = "新新签"
        elif kind == "unknown-resident":
            c["证件号码"] = id_card("410103", date(1990, 1, 1), 11, True)
        elif kind == "revoked-without-reason":
            c["状态"] = "已解约"
            c["解约日期"] = "2026-06-30"
        elif kind == "second-contract":
            c["证件号码"] = w.contracts[i - 1]["证件号码"]
        spoilt[i + 1] = kind
    return spoilt


def csv_bytes(source: str, records: list[dict[str, Any]], encoding: str = "utf-8") -> bytes:
    """The records as the CSV a regional system exports: a Chinese header row; a list of
    sub-records in one cell as `a:b:c;a:b:c` (the mapping's sub-field order)."""
    import csv
    import io

    from gateway.mapping.registry import mappings

    spec = mappings()[source]
    columns: list[str] = []
    for record in records:
        columns += [k for k in record if k not in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for record in records:
        row = []
        for column in columns:
            value = record.get(column, "")
            field_spec = spec.fields.get(column)
            if isinstance(value, list) and field_spec is not None and field_spec.items:
                names = [f.name for f in field_spec.items]
                value = ";".join(":".join(str(v.get(n, "")) for n in names) for v in value)
            elif isinstance(value, list):
                value = ";".join(str(v) for v in value)
            row.append(value)
        writer.writerow(row)
    return out.getvalue().encode(encoding)
