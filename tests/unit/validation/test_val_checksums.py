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
        ("840000197007073017", "84 is no province and no residence-permit prefix"),
        ("41010219560312042x", "lower-case x where the check character is 1"),
        ("110105194912310029", "check character X written as 9"),
        (None, "not a string"),
    ],
)
def test_invalid_id_cards(number, why):
    assert not c.id_card_valid(number), why


def test_a_lower_case_x_is_accepted_and_told_apart():
    assert c.id_card_valid("11010519491231002x")
    assert c.id_card_lowercase_x("11010519491231002x")
    assert not c.id_card_lowercase_x("11010519491231002X")
    assert not c.id_card_lowercase_x("41010219560312042x")  # its check character is 1


@pytest.mark.parametrize(
    "number",
    ["810000199001011230", "820000198505052244", "830000197007073015"],
    ids=["hong-kong", "macao", "taiwan"],
)
def test_residence_permits_of_hong_kong_macao_and_taiwan_residents(number):
    assert c.id_card_valid(number)
    assert c.id_card_birth_date(number) is not None


def test_83_is_an_id_prefix_but_no_division():
    assert not c.division_code_valid("830000")


def test_id_card_parts():
    assert c.id_card_birth_date("410102195603120421").isoformat() == "1956-03-12"
    assert c.id_card_sex("410102195603120421") == "female"
    assert c.id_card_sex("440104194910010138") == "male"
    assert c.id_card_check_char("11010519491231002") == "X"


@pytest.mark.parametrize(
    "code",
    [
        "91350100M000100Y43",
        "12410102415736212F",
        "125301110157339528",
        "12410100415801379B",
        "124401044553729196",
        "12440100455358869P",
    ],
)
def test_valid_uscc(code):
    assert c.uscc_valid(code)


@pytest.mark.parametrize(
    "code", ["91350100M000100Y44", "91350100M000100Y4", "91350100I000100Y43", "9135010OM000100Y43"]
)
def test_invalid_uscc(code):
    assert not c.uscc_valid(code)


def test_uscc_checks_the_organisation_code_inside_it():
    # 415736213 is not a GB 11714 code (its check character is 2), although the 18th character
    # is the right GB 32100 check character for the first 17.
    code = "12410102415736213"
    code += c.uscc_check_char(code)
    assert code == "12410102415736213J"
    assert not c.uscc_valid(code)
    assert c.org_code_valid("415736212") and not c.org_code_valid("415736213")


def test_org_code_check_char():
    # The organisation code embedded in 91350100M000100Y43 is M000100Y4.
    assert c.org_code_check_char("M000100Y") == "4"
    # GB 11714 values letters A=10 … Z=35 (J is 19, not its GB 32100 index 18): 3 x 19 = 57,
    # 11 - 57 mod 11 = 9.
    assert c.org_code_check_char("J0000000") == "9"
    # 10 is written X, 11 is written 0.
    assert c.org_code_check_char("00000001") == "9"
    assert c.org_code_check_char("00000006") == "X"
    assert c.org_code_check_char("00000000") == "0"


@pytest.mark.parametrize("code", ["M000100Y4", "00000006X", "000000000"])
def test_valid_org_codes(code):
    assert c.org_code_valid(code)


@pytest.mark.parametrize("code", ["M000100Y5", "m000100Y4", "00000006x", "00000000", None])
def test_invalid_org_codes(code):
    assert not c.org_code_valid(code)


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
