"""`python -m gateway.validation.bench`: validation throughput on one core.

Validates the CN Patient and family-doctor contract examples (claimed profiles, defaults,
core definitions, invariants) repeatedly for a few seconds each and prints resources/s.
Distinct copies (new ids and identifiers) keep any per-object caching out of the figure.
"""

from __future__ import annotations

import copy
import sys
import time
from typing import Any

from gateway.validation.checksums import id_card_check_char
from gateway.validation.locations import default_profiles_dir
from gateway.validation.registry import ProfileRegistry, read_json
from gateway.validation.validator import Validator

TARGET = 1000.0


def _patients(template: dict[str, Any], n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        p = copy.deepcopy(template)
        p["id"] = f"bench-{i}"
        first17 = f"41010219560312{i % 1000:03d}"
        card = first17 + id_card_check_char(first17)
        for ident in p["identifier"]:
            if ident["system"] == "urn:oid:2.16.156.10011.1.3":
                ident["value"] = card
        p["gender"] = "male" if int(first17[16]) % 2 else "female"
        p["extension"][0]["valueCoding"]["code"] = "1" if p["gender"] == "male" else "2"
        out.append(p)
    return out


def _contracts(template: dict[str, Any], n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        c = copy.deepcopy(template)
        c["id"] = f"bench-{i}"
        c["identifier"][0]["value"] = f"QY4101022026{i:05d}"
        out.append(c)
    return out


def measure(validator: Validator, resources: list[dict[str, Any]], seconds: float) -> float:
    for r in resources[:10]:  # warm-up: compile trees and expansions
        if any(i.is_error for i in validator.validate(r)):
            raise SystemExit(f"benchmark input is invalid: {validator.validate(r)}")
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for r in resources:
            validator.validate(r)
        done += len(resources)
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 3.0
    examples = default_profiles_dir() / "examples"
    validator = Validator(ProfileRegistry.load())
    suites = {
        "CN Patient (cn-patient)": _patients(
            read_json(examples / "Patient-cn-wang-xiuying.json"), 200
        ),
        "Contract (cn-family-doctor-contract)": _contracts(
            read_json(examples / "CarePlan-cn-contract-wang-2026.json"), 200
        ),
    }
    worst = None
    for name, resources in suites.items():
        rate = measure(validator, resources, seconds)
        worst = rate if worst is None else min(worst, rate)
        print(f"{name:40s} {rate:8.0f} resources/s (one core)")
    print(f"target ≥ {TARGET:.0f} resources/s: {'met' if worst and worst >= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
