"""$import: NDJSON files the gateway can read (under GATEWAY_BULK_IMPORT_DIR), named by a
manifest, written as every write is (validation, rules, access of the client that started it).

Kick-off: `POST [base]/$import` with `Prefer: respond-async` and either a Parameters resource
(the Bulk Data import proposal: `inputFormat`, and one `input` per file with parts `type` and
`url`) or a Bulk Data export manifest (`output: [{type, url}]`). A url is a `file://` URL or a
path relative to the import directory; anything outside that directory is refused.

The job reads each file from its byte offset, `bulk_page_size` lines at a time, as a batch of
`PUT Type/id` entries (idempotent: a re-run updates, never duplicates), and commits the new
offset with the error lines of that batch (an OperationOutcome per rejected line, naming the
file and line). A worker that dies between a batch's writes and its offset sends that batch
again: it only updates the same resources.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import orjson

from gateway.bulk.export import Exporter, file_name
from gateway.bulk.jobs import Job, Jobs, Progress
from gateway.bulk.ndjson import Line, batch, entry_results, read_line
from gateway.bulk.spec import NDJSON_FORMATS, bad
from gateway.fhir.parse import is_resource_type, parse_json
from gateway.fhir.request import FhirRequest
from gateway.settings import Settings
from gateway.store.repository import Repository
from gateway.vocab import outcomes


@dataclass
class ImportSpec:
    inputs: list[dict[str, Any]]  # {"type": str | None, "url": as given, "path": resolved}

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass
class ImportState:
    index: int = 0  # which input
    offset: int = 0  # bytes of it read
    line: int = 0  # lines of it read
    written: int = 0
    failed: int = 0
    errors: dict[str, Any] | None = None  # the error file (Progress as a dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def _inputs(body: Any) -> list[tuple[Any, Any, str]]:
    """(type, url, where) of each input named by a Parameters body or an export manifest."""
    if not isinstance(body, dict):
        raise bad("$import needs a Parameters resource or a manifest", "$import")
    found: list[tuple[Any, Any, str]] = []
    if body.get("resourceType") == "Parameters":
        for i, p in enumerate(body.get("parameter") or []):
            where = f"Parameters.parameter[{i}]"
            if not isinstance(p, dict):
                raise bad("A parameter is an object", where)
            if p.get("name") == "inputFormat":
                fmt = p.get("valueCode") or p.get("valueString")
                if fmt not in NDJSON_FORMATS:
                    raise bad(f"inputFormat {fmt!r}: application/fhir+ndjson only", where)
            if p.get("name") != "input":
                continue
            parts = {q.get("name"): q for q in p.get("part") or [] if isinstance(q, dict)}
            url = parts.get("url", {})
            value = url.get("valueUrl") or url.get("valueUri") or url.get("valueString")
            rtype = parts.get("type", {})
            found.append((rtype.get("valueCode") or rtype.get("valueString"), value, where))
    elif isinstance(body.get("output"), list):
        for i, o in enumerate(body["output"]):
            o = o if isinstance(o, dict) else {}
            found.append((o.get("type"), o.get("url"), f"output[{i}]"))
    else:
        raise bad("$import needs a Parameters resource or a manifest", "$import")
    if not found:
        raise bad("$import names no input file", "input")
    return found


def resolve(url: Any, root: Path, where: str) -> Path:
    if not isinstance(url, str) or not url:
        raise bad("An input without a url", where, "GW-1871")
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme in ("", None) or len(parsed.scheme) == 1:  # a path (or C:\…)
        path = root / url
    else:
        raise bad(f"{url}: the gateway reads files only (file:// URLs or paths)", where, "GW-1872")
    path = path.resolve()
    if not path.is_relative_to(root):
        raise bad(f"{url} is outside the import directory", where, "GW-1873")
    if not path.is_file():
        raise bad(f"{url}: no such file in the import directory", where, "GW-1874")
    return path


def parse_import(req: FhirRequest, settings: Settings) -> ImportSpec:
    if settings.bulk_import_dir is None:
        raise outcomes.error(
            403,
            "forbidden",
            "GW-1875",
            "$import is off: no import directory is configured (GATEWAY_BULK_IMPORT_DIR)",
        )
    root = settings.bulk_import_dir.resolve()
    body = req.json_body if req.json_body is not None else parse_json(req.body or b"")
    inputs = []
    for rtype, url, where in _inputs(body):
        if rtype is not None and not is_resource_type(rtype):
            raise bad(f"Unknown resource type {rtype!r}", where, "GW-1876")
        inputs.append({"type": rtype, "url": url, "path": str(resolve(url, root, where))})
    return ImportSpec(inputs)


class Importer:
    def __init__(self, core: Any, jobs: Jobs, settings: Settings):
        self.core = core
        self.jobs = jobs
        self.settings = settings
        self.writer = Exporter(core, jobs, settings)

    async def run_slice(
        self, job: Job, worker: str, repo: Repository, stopping: Any = None
    ) -> bool:
        import time

        inputs = json.loads(job.spec)["inputs"]
        state = ImportState(**job.state) if job.state else ImportState()
        deadline = time.monotonic() + self.settings.bulk_slice_seconds
        while True:
            if state.index >= len(inputs):
                return not await self.jobs.finish(
                    job.job_id, worker, "completed", self.settings.bulk_retention
                )
            if time.monotonic() > deadline or (stopping is not None and stopping.is_set()):
                return True
            source = inputs[state.index]
            lines, offset = self._read(Path(source["path"]), source["type"], state)
            if not lines and offset == state.offset:
                state.index, state.offset, state.line = state.index + 1, 0, 0
                if not await self.writer.commit(job, worker, state, [], {}):
                    return False
                continue
            problems = await self._write(lines, repo, source["url"], state)
            state.offset = offset
            chunks, files = self._errors(problems, state)
            if not await self.writer.commit(job, worker, state, chunks, files, "error"):
                return False

    def _read(self, path: Path, res_type: str | None, state: ImportState) -> tuple[list[Line], int]:
        lines: list[Line] = []
        with path.open("rb") as f:
            f.seek(state.offset)
            while len(lines) < self.settings.bulk_page_size:
                raw = f.readline()
                if not raw:
                    break
                state.line += 1
                line = read_line(state.line, raw, res_type)
                if line is not None:
                    lines.append(line)
            return lines, f.tell()

    async def _write(
        self, lines: list[Line], repo: Repository, url: str, state: ImportState
    ) -> list[dict[str, Any]]:
        """Send the good lines as one batch; an OperationOutcome for each rejected line."""
        problems: list[tuple[int, dict[str, Any]]] = []

        def reject(line: Line, issues: list[dict[str, Any]]) -> None:
            for issue in issues:
                text = issue.get("diagnostics") or ""
                issue["diagnostics"] = f"{url} line {line.number}: {text}"
            problems.append((line.number, {"resourceType": "OperationOutcome", "issue": issues}))
            state.failed += 1

        good = [x for x in lines if x.problem is None]
        for line in lines:
            if line.problem is not None:
                issue = outcomes.Issue("structure", line.problem, "GW-1877").to_json()
                reject(line, [issue])
        if not good:
            return [p for _, p in sorted(problems, key=lambda x: x[0])]
        req = FhirRequest(
            method="POST",
            path="",
            body=batch(good),
            base_url=self.settings.public_base_url or "http://localhost/fhir",
            context=repo.ctx,
        )
        resp = await self.core.handle(req)
        body = resp.body if isinstance(resp.body, dict) else orjson.loads(resp.body or b"{}")
        for line, (status, outcome) in zip(good, entry_results(body), strict=False):
            if status < 300:
                state.written += 1
            else:
                reject(line, list((outcome or {}).get("issue") or [{"diagnostics": str(status)}]))
        return [p for _, p in sorted(problems, key=lambda x: x[0])]

    def _errors(
        self, problems: list[dict[str, Any]], state: ImportState
    ) -> tuple[list[dict[str, Any]], dict[str, tuple[bool, Progress]]]:
        if not problems:
            return [], {}
        data = b"".join(orjson.dumps(p) + b"\n" for p in problems)
        fresh = Progress(file_name("OperationOutcome", 1), 1)
        p = Progress(**state.errors) if state.errors else fresh
        first = p.chunks == 0
        chunk = {"name": p.name, "seq": p.chunks, "data": data}
        p.chunks, p.size, p.count = p.chunks + 1, p.size + len(data), p.count + len(problems)
        state.errors = asdict(p)
        return [chunk], {p.name: (first, p)}
