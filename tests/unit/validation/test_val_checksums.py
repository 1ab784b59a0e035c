import pytest

from gateway.validation import checksums as c


@pytest.mark.parametrize(
    "number",
    ["11010519491231002X", "410102195603120421", "440104194910010138", "53011119780905256X"],
)
def test_valid_id_cards(number):
    assert c.id_card_valid(number)


@pytest.mark.parametrize(
    "number, why",
    [
        ("410102195603120422", "wrong check character"),
        ("41010219560312042", "17 characters"),
        ("410102195602300428", "30 February"),
        ("990102195603120421", "no such province"),
        ("41010219560312042x", "lower-case x"),
        (None, "not a string"),
    ],
)
def test_invalid_id_cards(number, why):
    assert not c.id_card_valid(number), why


def test_id_card_parts():
    assert c.id_card_birth_date("410102195603120421").isoformat() == "1956-03-12"
    assert c.id_card_sex("410102195603120421") == "female"
    assert c.id_card_sex("440104194910010138") == "male"
    assert c.id_card_check_char("11010519491231002") == "X"


@pytest.mark.parametrize("code", ["91350100M000100Y43", "12410102415736212F", "125301110157339528"])
def test_valid_uscc(code):
    assert c.uscc_valid(code)


@pytest.mark.parametrize(
    "code", ["91350100M000100Y44", "91350100M000100Y4", "91350100I000100Y43", "9135010OM000100Y43"]
)
def test_invalid_uscc(code):
    assert not c.uscc_valid(code)


def test_org_code_check_char():
    # The organisation code embedded in 91350100M000100Y43 is M000100Y4.
    assert c.org_code_check_char("M000100Y") == "4"


@pytest.mark.parametrize("code, ok", [("410102", True), ("990102", False), ("41010", False)])
def test_division_codes(code, ok):
    assert c.division_code_valid(code) is ok


def test_fhirpath_functions_are_callable_from_fhirpathpy():
    import fhirpathpy

    from gateway.validation.invariants import FUNCTIONS

    options = {"userInvocationTable": FUNCTIONS}
    got = fhirpathpy.evaluate(
        {"resourceType": "Basic", "id": "x", "identifier": [{"value": "410102195603120421"}]},
        "identifier.value.cnIdCardValid() and identifier.value.cnIdCardBirthDate() = '1956-03-12'",
        options=options,
    )
    assert got == [True]
