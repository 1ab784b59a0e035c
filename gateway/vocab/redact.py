"""Identity numbers never appear whole in logs: `110105********002X`.

A log-record factory, installed once per process (`install()`), masks every resident ID
number (GB 11643: 18 characters, a birth date in positions 7-14) in the formatted message and
in the traceback of every record, whatever logger made it: the gateway's, uvicorn's,
SQLAlchemy's (which quotes statement parameters in its errors).
"""

from __future__ import annotations

import logging
import re
import traceback

ID_NUMBER = re.compile(
    r"(?<![0-9A-Za-z])([1-9]\d{5})((?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))"
    r"(\d{3}[\dXx])(?![0-9A-Za-z])"
)
_installed = False


def mask(text: str) -> str:
    """Keep the division (first 6) and the last 4 characters: enough to tell records apart."""
    return ID_NUMBER.sub(lambda m: m.group(1) + "*" * 8 + m.group(3), text)


def install() -> None:
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):  # type: ignore[no-untyped-def]
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call stays the logging module's to report
            return record
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = mask(text).rstrip("\n")
            record.exc_info = None  # formatted already: the handler prints exc_text
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
