"""Optional structure check with the fhir.resources R4B models (Validator(check_models=True)).

Off by default: gateway.fhir.parse already runs the models on write, and R4B differs from R4
4.0.1 for some resource types (the MedicinalProduct family, Evidence, …), where the
StructureDefinition walk is the authority. Types that R4B does not have are skipped.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError

from gateway.validation.issues import Issue


@cache
def _model(rtype: str) -> Any | None:
    from gateway.fhir.r4b import get_fhir_model_class

    try:
        return get_fhir_model_class(rtype)
    except (ValueError, KeyError, ImportError, AttributeError):
        return None


def model_issues(resource: dict[str, Any]) -> list[Issue]:
    rtype = resource["resourceType"]
    cls = _model(rtype)
    if cls is None:
        return []
    try:
        cls.model_validate(resource)
    except ValidationError as exc:
        out = []
        for err in exc.errors(include_url=False):
            path = rtype + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}"
                for p in err["loc"]
                if not (isinstance(p, str) and p.startswith("function-"))
            )
            out.append(Issue.make("VAL-1080", path, detail=err["msg"]))
        return out
    except (ValueError, TypeError) as exc:
        return [Issue.make("VAL-1080", rtype, detail=str(exc)[:200])]
    return []
