"""`gateway worker` processes for the reliability tests: started, SIGKILLed, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.bench.server import bench_env

SETTINGS = {
    "GATEWAY_SUBSCRIPTION_RETRY_BASE": "0.05",
    "GATEWAY_SUBSCRIPTION_RETRY_MAX": "0.3",
    "GATEWAY_SUBSCRIPTION_POLL": "0.1",
    "GATEWAY_SUBSCRIPTION_MAX_FAILURES": "200",
    "GATEWAY_SUBSCRIPTION_LEASE": "2",
    "GATEWAY_SUBSCRIPTION_CLAIM_IDLE": "2",
    "GATEWAY_SUBSCRIPTION_TIMEOUT": "5",
}


class Worker:
    def __init__(self, database_url: str, redis_url: str, prefix: str, **env: Any):
        self.env = bench_env(
            {
                **SETTINGS,
                "GATEWAY_DATABASE_URL": database_url,
                "GATEWAY_REDIS_URL": redis_url,
                "GATEWAY_REDIS_PREFIX": prefix,
                "GATEWAY_LOG_LEVEL": "info",
                "GATEWAY_VALIDATION_WORKERS": "0",
                **{k: str(v) for k, v in env.items()},
            }
        )
        self.log_path = Path(tempfile.mkstemp(prefix="gw-worker-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Worker:
        with open(self.log_path, "ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "worker"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.time() + timeout
        while "worker running" not in self.log():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"worker did not start: {self.log()[-3000:]}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no clean-up at all (leases and stream entries stay claimed)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None
        self.log_path.unlink(missing_ok=True)
