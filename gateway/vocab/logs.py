"""Log lines: the request each belongs to, and the JSON form operators' log pipelines read.

`REQUEST_ID` is set by the HTTP edge for the time a request is handled (a context variable:
every log call made on its behalf, in any layer and any task it starts, sees it). The JSON
formatter writes one object per line (`ts`, `level`, `logger`, `message`, `request_id`,
`pid`, `trace_id` when a trace is active, the fields a call passed with `extra=`, `exc`), and masks
identity numbers in the whole line, whatever field carries them (the record factory of
`redact` masks messages and tracebacks; this also covers `extra` fields and request paths).

`GATEWAY_LOG_FORMAT=json` makes `gateway serve` and `gateway worker` log so (uvicorn's own
loggers included); `text` (default) keeps the human form.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
from typing import Any

import orjson

from gateway.vocab import redact

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "gateway_request_id", default=None
)

_installed = False


def install() -> None:
    """Stamp every log record made in this process with the request it was made for (as it is
    made: a handler that formats it later, on another thread, still knows)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        record.trace_id = _trace_id()
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


# Attributes every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = frozenset(
    set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
    | {"message", "asctime", "color_message", "taskName", "request_id", "trace_id"}
)


def _trace_id() -> str | None:
    """The active OpenTelemetry trace, when tracing is on (the API is imported only then)."""
    import sys

    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            out["request_id"] = request_id
        trace_id = getattr(record, "trace_id", None) or _trace_id()
        if trace_id:
            out["trace_id"] = trace_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        line = orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        return redact.mask(line)


class TextFormatter(logging.Formatter):
    """The human form, with the request id when there is one, identity numbers masked."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        return redact.mask(f"{line} [{request_id}]" if request_id else line)


_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def logging_config(fmt: str, level: str) -> dict[str, Any]:
    """A logging.config.dictConfig dictionary (uvicorn's `log_config` takes it too): one stderr
    handler in the chosen format for the root logger and uvicorn's loggers."""
    formatter = (
        {"()": f"{__name__}.JsonFormatter"}
        if fmt == "json"
        else {"()": f"{__name__}.TextFormatter", "format": _TEXT}
    )
    level = level.upper()
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "gateway",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"gateway": formatter},
        "handlers": {"gateway": handler},
        "root": {"handlers": ["gateway"], "level": level},
        "loggers": {
            # uvicorn's loggers go through the root's handler (one format for every line).
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            # The gateway writes its own access line (with the request id): uvicorn's is off.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def configure(fmt: str, level: str) -> None:
    """Install `logging_config` in this process (and the identity-number record factory)."""
    import logging.config

    redact.install()
    install()
    logging.config.dictConfig(logging_config(fmt, level))
