"""`python -m gateway.validation.bench`: validation throughput on one core.

Validates the CN Patient and family-doctor contract examples (claimed profiles, defaults,
core definitions, invariants) repeatedly for a few seconds each and prints resources/s.
Distinct copies (new ids and identifiers) keep any per-object caching out of the figure.
With the corpora present it also measures the write check on Synthea resources (foreign data:
the R4 definitions judge it), structure only and structure plus the core rules.
"""

from __future__ import annotations

import copy
import sys
import time
from typing import Any

import orjson

from gateway.validation.checksums import id_card_check_char
from gateway.validation.locations import corpora_dir, default_profiles_dir
from gateway.validation.registry import ProfileRegistry, read_json
from gateway.validation.validator import Validator

TARGET = 1000.0
WRITE_TARGET = 2000.0  # structure plus core rules on foreign data, resources/s on one core


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


def _synthea(limit: int = 3) -> list[dict[str, Any]]:
    corpora = corpora_dir()
    folder = corpora / "synthea-r4" if corpora else None
    if folder is None or not folder.is_dir():
        return []
    paths = sorted(p for p in folder.glob("*.json") if "Information" not in p.name)[:limit]
    return [e["resource"] for p in paths for e in orjson.loads(p.read_bytes())["entry"]]


def measure(
    validator: Validator, resources: list[dict[str, Any]], seconds: float, **options: Any
) -> float:
    for r in resources[:10]:  # warm-up: compile trees and expansions
        if any(i.is_error for i in validator.validate(r, **options)):
            raise SystemExit(f"benchmark input is invalid: {validator.validate(r)}")
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for r in resources:
            validator.validate(r, **options)
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
    synthea = _synthea()
    if synthea:
        # The write check of `make run` (default mode): Synthea claims no profile of ours.
        structure = measure(validator, synthea, seconds, core_rules=False)
        core = measure(validator, synthea, seconds)
        print(f"{'Synthea write check, structure':40s} {structure:8.0f} resources/s (one core)")
        print(f"{'Synthea write check, structure + core':40s} {core:8.0f} resources/s (one core)")
        met = "met" if core >= WRITE_TARGET else "MISSED"
        print(f"target ≥ {WRITE_TARGET:.0f} resources/s (structure + core): {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
