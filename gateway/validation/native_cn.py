"""Native fast paths for our own profiles' invariants (cn-*), keyed by (key, expression).

The FHIRPath in profiles/StructureDefinition stays the definition; these functions return
what fhirpathpy returns for it (including its `all()` over an empty criterion being false),
and tests check both agree on every example and invalid case. A test also fails when one of
our invariants has no native path here, so a changed expression cannot silently go slow.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.validation.checksums import (
    division_code_valid,
    id_card_birth_date,
    id_card_sex,
    id_card_valid,
    uscc_valid,
)
from gateway.validation.locations import CANONICAL_BASE
from gateway.validation.native import Native, name_consistent
from gateway.validation.native_contract import NATIVE_CONTRACT
from gateway.validation.native_json import as_list as _list
from gateway.validation.native_json import extensions as _exts
from gateway.validation.native_json import value_of as _value_of
from gateway.validation.native_recognition import NATIVE_RECOGNITION
from gateway.validation.native_record import NATIVE_RECORD
from gateway.validation.native_referral import NATIVE_REFERRAL

_SD = CANONICAL_BASE + "/StructureDefinition/"
_CS = CANONICAL_BASE + "/CodeSystem/"
_SID = CANONICAL_BASE + "/sid/"
_ID_CARD = "urn:oid:2.16.156.10011.1.3"
# GB/T 2261.1 sex code -> the gender it agrees with (ConceptMap gb-t-2261-1-to-administrative-
# gender): 0 未知的性别 and 9 未说明的性别 are unknown; the legacy codes 5 (女性改(变)为男性) and
# 6 (男性改(变)为女性) of GB 2261-1980 name the present sex. cnp-3 reads the code whatever the
# coding's system, so data written with the former system URL is still understood.
_SEX_PAIRS = {("1", "male"), ("2", "female"), ("0", "unknown"), ("9", "unknown")}
_SEX_PAIRS |= {("5", "male"), ("6", "female")}


def _ext_codes(obj: dict[str, Any], url: str) -> list[Any]:
    out = []
    for e in _exts(obj, url):
        value = e.get("valueCoding") or e.get("valueCodeableConcept") or {}
        if isinstance(value, dict) and "code" in value:
            out.append(value["code"])
    return out


def _id_cards(res: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        i
        for i in _list(res.get("identifier"))
        if isinstance(i, dict) and i.get("system") == _ID_CARD
    ]


def cnad_1(ext: Any, env: dict) -> bool:
    value = _value_of(ext) if isinstance(ext, dict) else None
    return value is None or (isinstance(value, str) and division_code_valid(value))


def _checksum(check: Any) -> Native:
    def native(identifier: Any, env: dict) -> bool:
        value = identifier.get("value") if isinstance(identifier, dict) else None
        return value is None or (isinstance(value, str) and check(value))

    return native


def cnp_2(res: dict, env: dict) -> bool:
    birth = env["resource"].get("birthDate")
    if res.get("birthDate") is None:
        return True
    for ident in _id_cards(res):
        value = ident.get("value")
        born = id_card_birth_date(value) if isinstance(value, str) else None
        if born is None or born.isoformat() != birth:
            return False
    return True


def cnp_3(res: dict, env: dict) -> bool:
    gender = env["resource"].get("gender")
    codes = _ext_codes(res, _SD + "cn-sex-gb2261")
    return all((code, gender) in _SEX_PAIRS for code in codes)


def cnp_4(res: dict, env: dict) -> bool:
    gender = res.get("gender")
    if gender not in ("male", "female"):
        return True
    return all(
        isinstance(i.get("value"), str) and id_card_sex(i["value"]) == env["resource"].get("gender")
        for i in _id_cards(res)
    )


def cnp_5(res: dict, env: dict) -> bool:
    return all(name_consistent(n) for n in _list(res.get("name")))


def cnp_6(identifier: Any, env: dict) -> bool:
    value = identifier.get("value") if isinstance(identifier, dict) else None
    return value is None or bool(re.search(r"^[0-9]{17}$", value))


def cno_2(res: dict, env: dict) -> bool:
    for concept in _list(res.get("type")):
        for c in _list(concept.get("coding") if isinstance(concept, dict) else None):
            if (
                isinstance(c, dict)
                and c.get("system") == _CS + "institution-kind"
                and c.get("code") == "medical-alliance"
            ):
                return True
    return any(
        isinstance(i, dict) and i.get("system") == _SID + "uscc"
        for i in _list(res.get("identifier"))
    )


def cnt_1(res: dict, env: dict) -> bool:
    first = [
        p
        for p in _list(res.get("participant"))
        if isinstance(p, dict)
        and any(e.get("valueBoolean") is True for e in _exts(p, _SD + "cn-first-responsible"))
    ]
    return len(first) == 1


def cnt_2(res: dict, env: dict) -> bool:
    if "three-rings" not in _ext_codes(res, _SD + "cn-team-model"):
        return True
    return all(
        isinstance(p, dict) and _exts(p, _SD + "cn-team-ring")
        for p in _list(res.get("participant"))
    )


def cnh_1(res: dict, env: dict) -> bool:
    heads = [
        m
        for m in _list(res.get("member"))
        if isinstance(m, dict) and _ext_codes(m, _SD + "cn-household-relationship") == ["02"]
    ]
    return len(heads) == 1


def cnh_2(res: dict, env: dict) -> bool:
    return "quantity" not in res or res["quantity"] == len(_list(res.get("member")))


def _total(components: list[Any], kind: str) -> Decimal | None:
    total = Decimal(0)
    for pc in components:
        if not isinstance(pc, dict) or pc.get("type") != kind:
            continue
        value = pc.get("amount", {}).get("value") if isinstance(pc.get("amount"), dict) else None
        if value is None:
            continue
        try:
            total += Decimal(str(value))
        except InvalidOperation:
            return None
    return total


def cncd_1(res: dict, env: dict) -> bool:
    for group in _list(res.get("propertyGroup")):
        components = _list(group.get("priceComponent")) if isinstance(group, dict) else []
        shares, base = _total(components, "informational"), _total(components, "base")
        if shares is None or base is None or shares != base:
            return False
    return True


_IDCARD_VALID = "value.cnIdCardValid()"
# Patient (cnp-2, cnp-4) and Practitioner (cnpr-2, cnpr-3) state the same two rules.
_BIRTH_DATE = (
    f"birthDate.empty() or identifier.where(system = '{_ID_CARD}').all("
    "value.cnIdCardBirthDate() = %resource.birthDate.toString())"
)
_SEX_DIGIT = (
    "(gender = 'male' or gender = 'female').not() or identifier.where(system = "
    f"'{_ID_CARD}').all(value.cnIdCardSex() = %resource.gender)"
)

NATIVE_CN: dict[tuple[str, str], Native] = {
    ("cnad-1", "value.cnDivisionValid()"): cnad_1,
    ("cnp-1", _IDCARD_VALID): _checksum(id_card_valid),
    ("cnpr-1", _IDCARD_VALID): _checksum(id_card_valid),
    ("cno-1", "value.cnUsccValid()"): _checksum(uscc_valid),
    ("cnp-2", _BIRTH_DATE): cnp_2,
    (
        "cnp-3",
        f"extension.where(url = '{_SD}cn-sex-gb2261').value.code.all(($this = '1' and "
        "%resource.gender = 'male') or ($this = '2' and %resource.gender = 'female') or "
        "(($this = '0' or $this = '9') and %resource.gender = 'unknown') or ($this = '5' and "
        "%resource.gender = 'male') or ($this = '6' and %resource.gender = 'female'))",
    ): cnp_3,
    ("cnp-4", _SEX_DIGIT): cnp_4,
    ("cnpr-2", _BIRTH_DATE): cnp_2,
    ("cnpr-3", _SEX_DIGIT): cnp_4,
    ("cnp-5", "name.all(cnNameConsistent())"): cnp_5,
    ("cnp-6", "value.matches('^[0-9]{17}$')"): cnp_6,
    (
        "cno-2",
        f"type.coding.where(system = '{_CS}institution-kind' and code = "
        f"'medical-alliance').exists() or identifier.where(system = '{_SID}uscc').exists()",
    ): cno_2,
    **NATIVE_CONTRACT,  # cnc-*: the contract profile's invariants
    (
        "cnt-1",
        f"participant.where(extension.where(url = '{_SD}cn-first-responsible' and "
        "value = true).exists()).count() = 1",
    ): cnt_1,
    (
        "cnt-2",
        f"extension.where(url = '{_SD}cn-team-model').value.code.where($this = "
        "'three-rings').empty() or participant.all(extension.where(url = "
        f"'{_SD}cn-team-ring').exists())",
    ): cnt_2,
    (
        "cnh-1",
        f"member.where(extension.where(url = '{_SD}cn-household-relationship').value.code"
        " = '02').count() = 1",
    ): cnh_1,
    ("cnh-2", "quantity.empty() or quantity = member.count()"): cnh_2,
    **NATIVE_REFERRAL,  # cnr-*, cnrt-*, cnap-*, cnlp-*, cnrb-*: the referral profiles'
    **NATIVE_RECOGNITION,  # cnrd-*: the recognition decision's
    **NATIVE_RECORD,  # cnro-*, cnfe-*: the health-record profiles'
    (
        "cncd-1",
        "propertyGroup.all(priceComponent.where(type = 'informational').amount.value"
        ".aggregate($this + $total, 0) = priceComponent.where(type = 'base').amount.value"
        ".aggregate($this + $total, 0))",
    ): cncd_1,
}
