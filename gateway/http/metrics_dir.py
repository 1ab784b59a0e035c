"""prometheus-client's multiprocess mode for `gateway serve`: chosen by PROMETHEUS_MULTIPROC_DIR
when prometheus-client is first imported, so this module imports none of it (nor anything of
the gateway that does) and runs before the app is loaded."""

from __future__ import annotations

import os
import shutil
import tempfile

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PREFIX = "gateway-metrics-"


def prepare() -> str:
    """Every process `gateway serve` starts (uvicorn workers, and the validation processes
    that count the refusals of large bundles) counts into files under PROMETHEUS_MULTIPROC_DIR,
    which /metrics adds up: a fresh temporary directory when it is unset; an operator's
    directory is emptied of old files, as prometheus-client requires at start."""
    path = os.environ.get(ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    else:
        path = tempfile.mkdtemp(prefix=_PREFIX)
        os.environ[ENV] = path
    return path


def remove(path: str | None) -> None:
    """Remove a directory `prepare` created (never an operator's)."""
    if path and os.path.basename(path).startswith(_PREFIX):
        shutil.rmtree(path, ignore_errors=True)
