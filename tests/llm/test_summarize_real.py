"""Summaries with the real embedded model and the real USE embedder (slow)."""

from __future__ import annotations

from typing import Any

import pytest

from kbchat.chat.summarize import Summary, SummaryOptions, summarize
from kbchat.registry import create_embedder

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOC = [
    "The Aurora K3 kettle is made by Lindqvist Appliances in Malmo, Sweden.",
    "It holds 1.7 litres and boils water in about ninety seconds.",
    "The kettle has a two year warranty from the date of purchase.",
    "Descale it every month with citric acid to keep the heating plate clean.",
    "The base plugs into any socket of 220 to 240 volts.",
] * 3


@pytest.mark.parametrize("strategy", ["extract", "map-reduce"])
def test_a_real_summary_keeps_the_main_facts(llamacpp_model: Any, strategy: str) -> None:
    options = SummaryOptions(strategy=strategy, max_tokens=120)  # type: ignore[arg-type]
    events = list(summarize(llamacpp_model, DOC, embedder=create_embedder("use"), options=options))
    summary = events[-1]
    assert isinstance(summary, Summary) and summary.strategy == strategy
    assert summary.text and summary.finish_reason in ("stop", "length")
    assert "kettle" in summary.text.lower()
    assert summary.steps == 1  # a short document: one call, whatever the strategy
