"""`gateway import FILE…` for FHIR files: NDJSON (one resource a line) and transaction or batch
Bundles (Synthea's patients), sent to a gateway (a running one, or one in the command's
process) with a progress bar over the bytes and a summary at the end.

Every write goes through the gateway's HTTP API, so it is validated, checked by the rules and
the client's access, and recorded as any other write. A re-run is idempotent: NDJSON lines
with an id are `PUT`s, and a transaction's `POST` entries with `urn:uuid:` fullUrls become
`PUT`s on their uuid (gateway.bulk.ndjson); the second run updates what the first created and
creates nothing. Rejected lines and bundles are listed with their file, line or entry, and the
reasons the gateway gave.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gateway.bulk.ndjson import Line, batch, entry_results, read_line, repeatable_transaction
from gateway.vocab import json_io, outcomes

RETRIES = 5


class ImportStopped(Exception):
    """The gateway refused a request for a reason sending it again will not fix."""


@dataclass
class Tally:
    files: int = 0
    created: int = 0
    updated: int = 0
    unkeyed: int = 0  # lines without an id: created on every run
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _reasons(outcome: Any) -> list[str]:
    out = []
    for issue in (outcome or {}).get("issue", []) if isinstance(outcome, dict) else []:
        if issue.get("severity") in ("error", "fatal"):
            where = ", ".join(issue.get("expression") or issue.get("location") or [])
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text", "")
            out.append(f"{where}: {text}" if where else text)
    return out


async def _post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    for attempt in range(RETRIES):
        r = await client.post("/", content=body, headers={"content-type": "application/fhir+json"})
        if r.status_code in (429, 503) and attempt < RETRIES - 1:
            await asyncio.sleep(float(r.headers.get("retry-after", 2)))
            continue
        return r
    raise ImportStopped("the gateway stayed unavailable")


def _count(tally: Tally, status: int) -> None:
    if status == 201:
        tally.created += 1
    else:
        tally.updated += 1


async def _ndjson(
    path: Path, client: httpx.AsyncClient, chunk: int, tally: Tally, advance: Any
) -> None:
    number = 0
    with path.open("rb") as f:
        while True:
            lines: list[Line] = []
            consumed = 0
            while len(lines) < chunk:
                raw = f.readline()
                if not raw:
                    break
                consumed += len(raw)
                number += 1
                line = read_line(number, raw, None)
                if line is None:
                    continue
                if line.problem is not None:
                    tally.rejected.append(
                        {"file": path.name, "at": f"line {number}", "reasons": [line.problem]}
                    )
                    continue
                lines.append(line)
            if lines:
                r = await _post(client, batch(lines))
                if r.status_code != 200:
                    raise ImportStopped(f"HTTP {r.status_code}: {'; '.join(_reasons(r.json()))}")
                for line, (status, outcome) in zip(lines, entry_results(r.json()), strict=False):
                    if status < 300:
                        _count(tally, status)
                        tally.unkeyed += line.res_id is None
                    else:
                        tally.rejected.append(
                            {
                                "file": path.name,
                                "at": f"line {line.number}",
                                "reasons": _reasons(outcome) or [str(status)],
                            }
                        )
            advance(consumed)
            if not consumed:
                return


async def _bundle(path: Path, client: httpx.AsyncClient, tally: Tally, advance: Any) -> None:
    data = path.read_bytes()
    try:
        doc = json_io.loads_exact(data)
    except outcomes.OperationOutcomeError as err:
        tally.rejected.append({"file": path.name, "at": "", "reasons": _reasons(err.outcome())})
        advance(len(data))
        return
    except ValueError as exc:
        tally.rejected.append({"file": path.name, "at": "", "reasons": [f"malformed JSON: {exc}"]})
        advance(len(data))
        return
    kind = doc.get("type") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or doc.get("resourceType") != "Bundle"
        or kind
        not in (
            "transaction",
            "batch",
        )
    ):
        reason = "neither NDJSON nor a transaction or batch Bundle"
        tally.rejected.append({"file": path.name, "at": "", "reasons": [reason]})
        advance(len(data))
        return
    repeatable_transaction(doc)
    r = await _post(client, json_io.dumps(doc))
    advance(len(data))
    if r.status_code != 200:
        tally.rejected.append(
            {"file": path.name, "at": "Bundle", "reasons": _reasons(r.json()) or [r.text[:300]]}
        )
        return
    for i, (status, outcome) in enumerate(entry_results(r.json())):
        if status < 300:
            _count(tally, status)
        else:
            tally.rejected.append(
                {
                    "file": path.name,
                    "at": f"entry {i}",
                    "reasons": _reasons(outcome) or [str(status)],
                }
            )


def is_ndjson(path: Path) -> bool:
    if path.suffix.lower() in (".ndjson", ".jsonl"):
        return True
    with path.open("rb") as f:
        head = f.read(1 << 16)
    first = head.lstrip()[:1]
    # one resource per line: the first line is a complete JSON object of its own
    line = head.lstrip().split(b"\n", 1)[0]
    if first != b"{" or b"\n" not in head.lstrip():
        return False
    try:
        json_io.loads_exact(line)
    except (outcomes.OperationOutcomeError, ValueError):
        return False
    return True


async def run_files_import(
    paths: list[Path], client: httpx.AsyncClient, chunk: int, console: Console
) -> Tally:
    tally = Tally()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("import", total=sum(p.stat().st_size for p in paths))
        for path in paths:
            bar.update(task, description=f"import ← {path.name}")

            def advance(n: int) -> None:
                bar.advance(task, n)

            if is_ndjson(path):
                await _ndjson(path, client, chunk, tally, advance)
            else:
                await _bundle(path, client, tally, advance)
            tally.files += 1
    return tally


def files_summary(tally: Tally, shown: int = 30) -> list[Table]:
    counts = Table(title="import summary")
    for col in ("files", "created", "updated", "rejected"):
        counts.add_column(col, justify="right")
    counts.add_row(
        str(tally.files), str(tally.created), str(tally.updated), str(len(tally.rejected))
    )
    tables = [counts]
    if tally.rejected:
        table = Table(title=f"rejected (first {min(shown, len(tally.rejected))})")
        for col in ("file", "where", "reasons"):
            table.add_column(col)
        for r in tally.rejected[:shown]:
            table.add_row(r["file"], r["at"], "\n".join(r["reasons"]))
        tables.append(table)
    return tables
