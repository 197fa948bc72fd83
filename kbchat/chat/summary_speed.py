"""How fast a model reads and writes, measured on the summary steps it has run.

Every model call of a summary is timed: from sending the prompt to the first text delta is
reading the prompt (prompt evaluation), the rest is writing (generation). The speeds of a
model's recent calls replace the configured defaults, so ``auto`` and the expected time
follow the machine as it is (a busy machine reads several times slower than an idle one).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

_DECAY = 0.5
"""Weight of the earlier calls against the latest one (halved at each call)."""
_MIN_TOKENS = 32
"""Calls that read or write fewer tokens say too little about speed (latency dominates)."""


@dataclass(frozen=True, slots=True)
class StepTiming:
    """One model call of a summary (or the sentence embedding of ``extract``).

    ``prompt_s`` runs from sending the prompt to the first text delta, ``generate_s`` from
    there to the end; tokens as the backend reported them.
    """

    stage: str
    prompt_tokens: int
    prompt_s: float
    completion_tokens: int
    generate_s: float


class _Rate:
    """Tokens per second as a decayed, token-weighted average of the calls so far."""

    def __init__(self) -> None:
        self.tokens, self.seconds, self.samples = 0.0, 0.0, 0

    def per_second(self, default: float) -> float:
        return self.tokens / self.seconds if self.samples else default

    def add(self, tokens: int, seconds: float) -> None:
        if tokens < _MIN_TOKENS or seconds <= 0:
            return
        self.tokens = _DECAY * self.tokens + tokens
        self.seconds = _DECAY * self.seconds + seconds
        self.samples += 1


class ModelSpeeds:
    """Tokens per second a model reads (prompt) and writes, from its recent calls."""

    def __init__(self) -> None:
        self._read = _Rate()
        self._write = _Rate()
        self._lock = threading.Lock()

    def prompt_tps(self, default: float) -> float:
        """Measured prompt speed, or ``default`` before any call was long enough to tell."""
        with self._lock:
            return self._read.per_second(default)

    def generate_tps(self, default: float) -> float:
        """Measured generation speed, or ``default`` before any call wrote enough to tell."""
        with self._lock:
            return self._write.per_second(default)

    def record(self, timing: StepTiming) -> None:
        """Take one call's timing into account (too few tokens to tell: ignored)."""
        with self._lock:
            self._read.add(timing.prompt_tokens, timing.prompt_s)
            self._write.add(timing.completion_tokens, timing.generate_s)


_measured: weakref.WeakKeyDictionary[object, ModelSpeeds] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def speeds_of(model: object) -> ModelSpeeds:
    """The speeds measured on ``model`` in this process (kept while the model lives; a
    model that cannot be weakly referenced gets a fresh, unmeasured one each time)."""
    with _registry_lock:
        try:
            speeds = _measured.get(model)
        except TypeError:
            return ModelSpeeds()
        if speeds is None:
            speeds = ModelSpeeds()
            _measured[model] = speeds
        return speeds
