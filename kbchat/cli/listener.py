"""Progress of a knowledge-base write shown on a rich progress bar (imported when writing)."""

from __future__ import annotations

from rich.progress import Progress

from kbchat.kb.knowledge_base import FileOutcome, IngestListener


class RichListener(IngestListener):
    """Shows a progress bar on stderr and collects outcomes."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("files", total=None)
        self.shown: set[str] = set()
        """Files whose failure was printed as it happened."""

    def started(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def file_done(self, outcome: FileOutcome) -> None:
        self.progress.update(self.task, advance=1, description=outcome.name[-40:])
        if outcome.status == "failed":
            self.progress.console.print(f"failed: {outcome.error}", style="red", markup=False)
            self.shown.add(outcome.name)

    def chunks_embedded(self, done: int, total: int) -> None:
        if total > 32:  # a big file: say how far its embedding got (small ones finish at once)
            self.progress.update(self.task, description=f"embedding {done}/{total} chunks")

    def waiting(self, message: str) -> None:
        self.progress.console.print(message, style="yellow", markup=False)
