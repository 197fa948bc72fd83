"""What a write to a knowledge base reports as it goes (``IngestListener``), and how the
listener stops it: ``cancelled`` answers, the write raises ``WriteStopped`` before its next
file, commit or embedding batch, never during a commit."""

from __future__ import annotations

from kbchat.kb.prepare import FileOutcome


class IngestListener:
    """Receives progress of a write operation; override what you need (all no-ops here)."""

    def started(self, total: int) -> None:
        """``total`` files are about to be processed."""

    def file_started(self, name: str) -> None:
        """The write has reached file ``name``: it is being read, or waits to be embedded
        with the files before it in one batch, until ``file_done``."""

    def file_done(self, outcome: FileOutcome) -> None:
        """One file finished (indexed, failed, skipped, unchanged or removed)."""

    def waiting(self, message: str) -> None:
        """Another process holds the knowledge base's write lock; this one waits."""

    def chunks_embedded(self, done: int, total: int) -> None:
        """``done`` of the ``total`` chunks of the files being committed are embedded."""

    def cancelled(self) -> str | None:
        """Why the write must stop now, or None to go on. Asked before starting each file,
        before each commit and after each embedding batch (keep it cheap: one small query at
        most)."""
        return None

    def hands_back(self) -> bool:
        """Whether the stop ``cancelled`` asked for hands the unfinished files back to be
        written later (their pending rows stay listed), rather than cancelling them."""
        return False


class WriteStopped(Exception):
    """The listener asked the write to stop (raised before a commit, never during one)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


QUIET = IngestListener()
"""A listener that hears nothing and never stops a write."""


def stop_if_cancelled(listener: IngestListener) -> None:
    """Raise ``WriteStopped`` if the listener says the write must stop now."""
    reason = listener.cancelled()
    if reason is not None:
        raise WriteStopped(reason)
