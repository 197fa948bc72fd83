"""Progress of a knowledge-base write shown on a rich progress bar (imported when writing).

Ctrl-C during the write asks it to stop cleanly (``RichListener.stop_on_interrupt``): the
files finished so far stay, the file in hand is left as it was; a second Ctrl-C quits at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rich.progress import Progress

from kbchat.kb.knowledge_base import FileOutcome, IngestListener

STOPPED = "stopped by Ctrl-C"


class RichListener(IngestListener):
    """Shows a progress bar on stderr and collects outcomes."""

    def __init__(self, progress: Progress, *, show_failures: bool = True) -> None:
        self.progress = progress
        self.show_failures = show_failures
        """Print each failure as it happens (else the caller reports the outcomes)."""
        self.task = progress.add_task("files", total=None)
        self.shown: set[str] = set()
        """Files whose failure was printed as it happened."""
        self.reason: str | None = None
        """Set by a first Ctrl-C: the write stops before its next commit or batch."""

    def started(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def file_done(self, outcome: FileOutcome) -> None:
        self.progress.update(self.task, advance=1, description=outcome.name[-40:])
        if outcome.status == "failed" and self.show_failures:
            self.progress.console.print(f"failed: {outcome.error}", style="red", markup=False)
            self.shown.add(outcome.name)

    def chunks_embedded(self, done: int, total: int) -> None:
        if total > 32:  # a big file: say how far its embedding got (small ones finish at once)
            self.progress.update(self.task, description=f"embedding {done}/{total} chunks")

    def waiting(self, message: str) -> None:
        self.progress.console.print(message, style="yellow", markup=False)

    def cancelled(self) -> str | None:
        return self.reason

    @contextmanager
    def stop_on_interrupt(self) -> Iterator[None]:
        """While inside, a first Ctrl-C asks the write to stop cleanly and a second one
        quits at once (KeyboardInterrupt). Outside the main thread nothing changes."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def interrupted(signum: int, frame: FrameType | None) -> None:
            if self.reason is not None:
                signal.signal(signal.SIGINT, previous)
                raise KeyboardInterrupt
            self.reason = STOPPED
            self.progress.console.print(
                "stopping after the batch in hand: files finished so far are kept, the rest "
                "are left as they were; press Ctrl-C again to quit now",
                style="yellow",
                markup=False,
            )

        previous = signal.signal(signal.SIGINT, interrupted)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
