import pytest

from gateway.validation.primitives import check


@pytest.mark.parametrize(
    "type_code, value",
    [
        ("date", "2024-02-29"),
        ("date", "2024-02"),
        ("date", "2024"),
        ("dateTime", "2024-02-29T23:59:60+08:00"),
        ("dateTime", "2024-02-29T10:00:00.123Z"),
        ("instant", "2024-01-01T00:00:00+14:00"),
        ("time", "23:59:59"),
        ("integer", -2147483648),
        ("positiveInt", 1),
        ("unsignedInt", 0),
        ("decimal", 1.5),
        ("boolean", False),
        ("code", "a b"),
        ("id", "cn-wang.1"),
        ("oid", "urn:oid:2.16.156.10011.1.3"),
        ("base64Binary", "aGVsbG8="),
        ("string", "王秀英"),
    ],
)
def test_valid(type_code, value):
    assert check(type_code, value) is None


@pytest.mark.parametrize(
    "type_code, value, message_id",
    [
        ("date", "2024-02-31", "VAL-1008"),
        ("date", "2023-02-29", "VAL-1008"),
        ("date", "2024-13", "VAL-1008"),
        ("date", "0000-01-01", "VAL-1008"),
        ("date", "2024-1-01", "VAL-1007"),
        ("dateTime", "2024-01-01T10:00:00", "VAL-1010"),
        ("dateTime", "2024-01-01T24:00:00Z", "VAL-1008"),
        ("dateTime", "2024-01-01T10:00Z", "VAL-1007"),
        ("instant", "2024-01-01T10:00:00", "VAL-1010"),
        ("instant", "2024-01-01", "VAL-1007"),
        ("instant", "2024-01-01T10:00:00+15:00", "VAL-1007"),
        ("time", "25:00:00", "VAL-1008"),
        ("integer", 2147483648, "VAL-1009"),
        ("integer", 1.5, "VAL-1007"),
        ("integer", "1", "VAL-1006"),
        ("integer", True, "VAL-1006"),
        ("positiveInt", 0, "VAL-1009"),
        ("unsignedInt", -1, "VAL-1009"),
        ("boolean", "true", "VAL-1006"),
        ("string", "", "VAL-1011"),
        ("code", " leading", "VAL-1007"),
        ("id", "has space", "VAL-1007"),
        ("id", "x" * 65, "VAL-1007"),
        ("oid", "urn:oid:3.1", "VAL-1007"),
        ("base64Binary", "not base64!", "VAL-1007"),
        ("uri", "has space", "VAL-1007"),
    ],
)
def test_invalid(type_code, value, message_id):
    problem = check(type_code, value)
    assert problem is not None and problem[0] == message_id
