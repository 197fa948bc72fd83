"""Deterministic fakes for tests (shipped so that users' own tests can use them too)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from kbchat.embed.base import Vectors, normalise

_TOKEN = re.compile(r"[\w]+|[^\w\s]", re.UNICODE)


class HashEmbedder:
    """Bag of hashed words and CJK characters: fast, deterministic, roughly lexical.

    Texts that share words get similar vectors, which is enough to test ranking logic.
    """

    def __init__(self, dim: int = 64, **_: object) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        self.dim = dim
        self.name = f"hash-{dim}"

    def _features(self, text: str) -> list[str]:
        features: list[str] = []
        for token in _TOKEN.findall(text.lower()):
            if any("\u4e00" <= ch <= "\u9fff" for ch in token):
                features.extend(token)
            else:
                features.append(token)
        return features

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> Vectors:
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                matrix[row, int.from_bytes(digest, "little") % self.dim] += 1.0
        return normalise(matrix)
