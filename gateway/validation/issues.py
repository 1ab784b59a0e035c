"""Validation issues and the OperationOutcome built from them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.validation.messages import MESSAGE_SYSTEM, render

_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
_SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding. `message_id` is the stable code (VAL-xxxx); `expression` a FHIRPath."""

    severity: str  # fatal | error | warning | information
    message_id: str
    issue_type: str  # http://hl7.org/fhir/issue-type
    text_zh: str
    text_en: str
    expression: str
    source: str | None = None  # profile or constraint the issue comes from
    # Breaks R4 itself (JSON form, unknown element, primitive format, the base cardinality):
    # a write answers 400; everything else (rules, profiles) is 422.
    structural: bool = False

    @classmethod
    def make(
        cls,
        message_id: str,
        expression: str,
        severity: str = "error",
        source: str | None = None,
        *,
        structural: bool = False,
        **fields: Any,
    ) -> Issue:
        issue_type, zh, en = render(message_id, **fields)
        return cls(severity, message_id, issue_type, zh, en, expression, source, structural)

    @property
    def is_error(self) -> bool:
        return self.severity in ("error", "fatal")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.issue_type,
            "details": {
                "coding": [{"system": MESSAGE_SYSTEM, "code": self.message_id}],
                "text": self.text_zh,
                "_text": {
                    "extension": [
                        {
                            "url": _TRANSLATION,
                            "extension": [
                                {"url": "lang", "valueCode": "en"},
                                {"url": "content", "valueString": self.text_en},
                            ],
                        }
                    ]
                },
            },
            "diagnostics": f"{self.text_en} / {self.text_zh}",
        }
        if self.expression:
            out["expression"] = [self.expression]
        return out


def has_errors(issues: Iterable[Issue]) -> bool:
    return any(i.is_error for i in issues)


def sort_issues(issues: Iterable[Issue]) -> list[Issue]:
    """Errors first, then by expression, keeping the walk order otherwise."""
    return sorted(issues, key=lambda i: _SEVERITY_ORDER.get(i.severity, 9))


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """An OperationOutcome dict; an all-clear information issue when there is nothing to say."""
    listed = sort_issues(issues)
    if not listed:
        listed = [Issue.make("VAL-1082", "", severity="information")]
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in listed]}
