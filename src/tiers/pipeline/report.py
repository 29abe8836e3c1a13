"""What a running deploy shows: live progress on a terminal, timestamped lines elsewhere.

>>> report = Reporter(live=False)
>>> with report.step("staging", "build"):                      # doctest: +SKIP
...     ...
2026-11-26T01:02:03Z staging build ...
2026-11-26T01:02:04Z staging build ok (1.2 s)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

__all__ = ["Reporter", "StepNote"]


class StepNote:
    """What a step says when it ends (``note.text = "reused venv"``)."""

    text: str = ""


class Reporter:
    """Prints each step as it starts and ends; on a terminal, a spinner while it runs."""

    def __init__(self, live: bool, emit: Callable[[str], None] = print) -> None:
        self.live = live
        self.emit = emit

    def line(self, text: str) -> None:
        if self.live:
            self.emit(text)
        else:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            self.emit(f"{stamp} {text}")

    @contextlib.contextmanager
    def step(self, environment: str, name: str) -> Iterator[StepNote]:
        note = StepNote()
        began = time.monotonic()
        with self._running(f"{environment} {name}"):
            try:
                yield note
            except BaseException as exc:
                took = time.monotonic() - began
                self.line(f"{environment} {name} FAILED ({took:.1f} s): {_first(exc)}")
                raise
        took = time.monotonic() - began
        detail = f": {note.text}" if note.text else ""
        self.line(f"{environment} {name} ok ({took:.1f} s){detail}")

    def _running(self, what: str) -> contextlib.AbstractContextManager[Any]:
        if not self.live:
            self.line(f"{what} ...")
            return contextlib.nullcontext()
        from rich.console import Console

        return Console(highlight=False, emoji=False).status(f"{what} ...")


def _first(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
