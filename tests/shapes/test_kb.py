"""The public shapes of the write path and of search results."""

from __future__ import annotations

from kbchat.shapes.kb import hit_info
from kbchat.types import Hit


def test_a_hit_shows_its_score_but_not_the_fusion_ranking_key() -> None:
    hit = Hit(
        kb="docs",
        file="kettle.txt",
        text="The K3 kettle has a two year warranty.",
        score=0.812345,
        chunk_id=7,
        headings=("Kettle", "Warranty"),
        extra={"rank_key": 3.5, "retrieval_score": 0.4},
    )
    shown = hit_info(hit)
    assert shown.extra == {"retrieval_score": 0.4}
    assert shown.score == 0.8123 and shown.headings == ["Kettle", "Warranty"]
