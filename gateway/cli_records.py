"""Regional records in and out of the gateway, from the command line.

`gateway import --source contract FILE`: a regional system's export (JSON or CSV) sent to
`$ingest` in chunks, with a progress bar and a summary of what was stored, updated and
rejected (and why).

The records go to a running gateway (`--base-url`, `--token`) or, by default, to one built in
this process on GATEWAY_DATABASE_URL: the same core either way (validation, rules, access).
After each chunk a checkpoint beside the file (`FILE.import.json`) records how far the import
got; run again after an interruption, it resumes there. Records of the chunk in flight when it
stopped are sent again, which only updates them: every write is a conditional update on the
record's business key. The rejections are kept in `FILE.import-report.json`.

`gateway export-native --source contract OUT`: the stored contracts read back into the
native records (`CarePlan/{id}/$native` for each CarePlan the search finds), a JSON array.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gateway.mapping.sources import read_file

RETRIES = 5


class Stopped(Exception):
    """The gateway refused a request for a reason sending it again will not fix."""


@dataclass
class Checkpoint:
    source: str
    fingerprint: str
    next: int = 0  # records done (the index of the next one to send)
    stored: int = 0
    updated: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, source: str, fingerprint: str) -> Checkpoint | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("source") != source or data.get("fingerprint") != fingerprint:
            return None  # another file or mapping: not this import's
        return cls(**data)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # never a half-written checkpoint


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@asynccontextmanager
async def gateway_client(
    base_url: str | None, token: str | None
) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if base_url:
        async with httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=600
        ) as client:
            yield client
        return
    from gateway.app import create_app
    from gateway.settings import Settings

    settings = Settings()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        base = f"http://localhost{settings.base_path.rstrip('/')}"
        async with httpx.AsyncClient(
            transport=transport, base_url=base, headers=headers, timeout=600
        ) as client:
            yield client


async def send_chunk(
    client: httpx.AsyncClient, source: str, records: list[Any], offset: int
) -> list[dict[str, Any]]:
    """The `record` parts of $ingest's answer, as plain dicts; retries while the gateway is
    busy or unavailable (429, 503: Retry-After)."""
    body = json.dumps(records, ensure_ascii=False).encode()
    for attempt in range(RETRIES):
        params = {"source": source, "offset": str(offset)}
        r = await client.post("/$ingest", params=params, content=body)
        if r.status_code in (429, 503) and attempt < RETRIES - 1:
            await asyncio.sleep(float(r.headers.get("retry-after", 2)))
            continue
        if r.status_code != 200:
            raise Stopped(f"HTTP {r.status_code}: {_diagnostics(r)}")
        return [_record(p["part"]) for p in r.json()["parameter"] if p["name"] == "record"]
    raise Stopped("the gateway stayed unavailable")


def _diagnostics(r: httpx.Response) -> str:
    try:
        return "; ".join(i.get("diagnostics", "") for i in r.json().get("issue", []))[:500]
    except ValueError:
        return r.text[:500]


def _record(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in parts:
        value = next((v for k, v in p.items() if k.startswith("value")), p.get("resource"))
        out[p["name"]] = value
    return out


def _reasons(outcome: dict[str, Any] | None) -> list[str]:
    reasons = []
    for issue in (outcome or {}).get("issue", []):
        if issue.get("severity") not in ("error", "fatal"):
            continue
        where = ", ".join(issue.get("location", []))
        text = issue.get("details", {}).get("text") or issue.get("diagnostics", "")
        reasons.append(f"{where}: {text}" if where else text)
    return reasons


async def run_import(
    path: Path,
    source: str,
    client: httpx.AsyncClient,
    chunk: int,
    restart: bool,
    charset: str | None,
    console: Console,
    on_chunk: Callable[[Checkpoint], None] | None = None,
) -> Checkpoint:
    records = read_file(path, charset)
    checkpoint_path = path.with_name(path.name + ".import.json")
    printed = fingerprint(path)
    state = None if restart else Checkpoint.load(checkpoint_path, source, printed)
    if state is not None and state.next:
        console.print(f"resuming {path.name} at record {state.next + 1} of {len(records)}")
    state = state or Checkpoint(source, printed)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"{source} ← {path.name}", total=len(records), completed=state.next)
        while state.next < len(records):
            batch = records[state.next : state.next + chunk]
            for result in await send_chunk(client, source, batch, state.next):
                number = int(result["number"])
                status = result.get("status")
                if status == "stored":
                    state.stored += 1
                elif status == "updated":
                    state.updated += 1
                else:
                    state.rejected.append(
                        {
                            "record": number,
                            "key": result.get("key"),
                            "reasons": _reasons(result.get("outcome")),
                        }
                    )
            state.next += len(batch)
            state.save(checkpoint_path)
            bar.update(task, completed=state.next)
            if on_chunk is not None:
                on_chunk(state)
    return state


def summary(state: Checkpoint, shown: int = 30) -> list[Table]:
    counts = Table(title="import summary")
    for col in ("stored", "updated", "rejected"):
        counts.add_column(col, justify="right")
    counts.add_row(str(state.stored), str(state.updated), str(len(state.rejected)))
    tables = [counts]
    if state.rejected:
        reasons = Table(title=f"rejected records (first {min(shown, len(state.rejected))})")
        for col in ("record", "key", "reasons"):
            reasons.add_column(col)
        for r in state.rejected[:shown]:
            reasons.add_row(str(r["record"]), str(r["key"] or ""), "\n".join(r["reasons"]))
        tables.append(reasons)
    return tables


def finish(path: Path, state: Checkpoint) -> Path:
    """The full list of rejections beside the file; the checkpoint goes (a later run of the
    same file is a new import, whose conditional writes update what this one stored)."""
    report = path.with_name(path.name + ".import-report.json")
    body = {"source": state.source, "stored": state.stored, "updated": state.updated}
    body["rejected"] = state.rejected  # type: ignore[assignment]
    report.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    path.with_name(path.name + ".import.json").unlink(missing_ok=True)
    return report


# Which resources an export reads back, per mapping (a FHIR search on the mapping's first
# resource): the contracts, not every CarePlan.
EXPORTED = {
    "contract": "CarePlan?category=https://fhir.jtys.cn/CodeSystem/family-doctor-category"
    "|family-doctor-contract"
}


async def export_native(
    client: httpx.AsyncClient, source: str, query: str | None, console: Console
) -> list[dict[str, Any]]:
    search = query or EXPORTED.get(source)
    if search is None:
        raise Stopped("name the resources to export with --query (Type?search)")
    url: str | None = f"/{search}{'&' if '?' in search else '?'}_count=200&_elements=id"
    records: list[dict[str, Any]] = []
    with Progress(TextColumn("{task.description}"), MofNCompleteColumn(), console=console) as bar:
        task = bar.add_task(f"{source} → native", total=None)
        while url:
            page = await client.get(url)
            if page.status_code != 200:
                raise Stopped(f"HTTP {page.status_code}: {_diagnostics(page)}")
            body = page.json()
            for entry in body.get("entry", []):
                resource = entry["resource"]
                r = await client.get(
                    f"/{resource['resourceType']}/{resource['id']}/$native",
                    params={"source": source},
                )
                if r.status_code != 200:
                    raise Stopped(f"HTTP {r.status_code}: {_diagnostics(r)}")
                records.append(r.json())
                bar.update(task, completed=len(records))
            url = next(
                (link["url"] for link in body.get("link", []) if link["relation"] == "next"), None
            )
    return records
