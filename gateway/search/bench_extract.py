"""Benchmark index extraction on the Synthea corpus (one core).

    python -m gateway.search.bench_extract [--corpora DIR] [--files N] [--repeat R] [--fhirpath]

Loads the patient bundles' resources into memory first (parsing is not measured), then times
``IndexExtractor.extract`` over all of them and prints resources/s and rows/resource.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson

from gateway.search.build_definitions import default_corpora
from gateway.search.extract import IndexExtractor
from gateway.search.registry import SearchParamRegistry


def load_synthea(corpora: Path, files: int | None = None) -> list[dict]:
    paths = sorted((corpora / "synthea-r4").glob("*.json"))
    # hospital/practitioner bundles are shared reference data; patient bundles are the load
    paths = [p for p in paths if not p.name.startswith(("hospital", "practitioner"))]
    out: list[dict] = []
    for p in paths[:files]:
        bundle = orjson.loads(p.read_bytes())
        out.extend(e["resource"] for e in bundle.get("entry", ()) if "resource" in e)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", type=Path, default=default_corpora())
    ap.add_argument("--files", type=int, default=None, help="patient bundles to use (all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fhirpath", action="store_true", help="force the fhirpathpy-only path")
    args = ap.parse_args(argv)

    resources = load_synthea(args.corpora, args.files)
    if not resources:
        raise SystemExit(f"no Synthea bundles under {args.corpora / 'synthea-r4'}")
    t0 = time.perf_counter()
    registry = SearchParamRegistry.load()
    extractor = IndexExtractor(registry, mode="fhirpath" if args.fhirpath else "fast")
    extractor.compile_all()
    t_load = time.perf_counter() - t0

    best = first = float("inf")
    rows = 0
    for i in range(args.repeat):
        rows = 0
        t0 = time.perf_counter()
        for r in resources:
            ix = extractor.extract(r)
            rows += sum(len(getattr(ix, t)) for t in ix.TABLES)
        elapsed = time.perf_counter() - t0
        first = elapsed if i == 0 else first
        best = min(best, elapsed)
    mode = "fhirpathpy-only" if args.fhirpath else "fast path"
    print(f"registry load + compile: {t_load * 1000:.0f} ms")
    n = len(resources)
    print(f"{n} Synthea resources, {mode}, {rows / n:.1f} rows/resource")
    print(f"  first pass (cold caches): {first:.2f} s → {n / first:,.0f} resources/s")
    print(f"  best of {args.repeat}: {best:.2f} s → {n / best:,.0f} resources/s")


if __name__ == "__main__":
    main()
