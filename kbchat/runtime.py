"""Process-wide state, set once by the edges (the CLI, ``kbchat serve``'s start-up) before
work starts; library modules never change it. An application that embeds kbchat calls
:func:`configure_process` itself, or leaves its own settings in place.
"""

from __future__ import annotations

import os

FAISS_THREADS = 1
"""OpenMP threads for FAISS. One query at a time is faster on one thread: measured 3.5 ms
vs 36 ms per query (20k x 384) with OpenMP's two threads on a busy 2-core machine."""


def configure_process(*, faiss_threads: int = FAISS_THREADS) -> None:
    """Set the OpenMP wait policy and FAISS's thread count for this process.

    ``OMP_WAIT_POLICY=PASSIVE`` (unless already set): spinning OpenMP workers made a
    one-text e5 call take seconds instead of 30 ms while llama.cpp or ingestion kept both
    cores busy (measured on 2 cores). It must be set before OpenMP starts, i.e. before an
    embedder or FAISS loads. Imports FAISS.

    Raises:
        ValueError: ``faiss_threads`` is not positive.
    """
    if faiss_threads <= 0:
        raise ValueError(f"faiss_threads must be > 0, got {faiss_threads}")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import faiss

    faiss.omp_set_num_threads(faiss_threads)
