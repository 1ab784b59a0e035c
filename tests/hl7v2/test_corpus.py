"""Every corpus message maps to its expected FHIR (or is refused at its expected place), with
no database: the planning alone (tests/hl7v2/corpus.py describes the files)."""

from __future__ import annotations

import pytest

from tests.hl7v2.corpus import UPDATE, cases, expected, mapped, write_expected


@pytest.mark.parametrize("case", cases())
def test_message_maps_to_expected_fhir(case: str) -> None:
    got = mapped(case)
    if UPDATE:
        write_expected(case, got)
    assert got == expected(case)


def test_the_corpus_covers_what_the_issue_asks() -> None:
    """Chinese text in both charsets, repeats, escapes, order, refusals: each has its case."""
    names = set(cases())
    assert {"adt-a01-utf8", "adt-a04-gb18030", "adt-a08-update"} <= names
    assert {"oru-r01-utf8", "oru-r01-gb18030-escapes", "oru-r01-out-of-order"} <= names
    assert {"malformed-bad-number", "malformed-broken-segment", "unsupported-orm"} <= names
