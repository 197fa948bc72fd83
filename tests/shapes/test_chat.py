"""The public shapes of summaries, read from the objects they show."""

from __future__ import annotations

from kbchat.chat.summarize import Summary
from kbchat.chat.summary_jobs import FileProgress, SummaryJob
from kbchat.shapes.chat import SummaryInfo, SummaryJobInfo, summary_info, summary_job_info


def test_a_summary_shows_its_text_as_summary() -> None:
    summary = Summary("Kettles boil.", "extract", "en", steps=1, estimated_s=2.0, seconds=1.5)
    shown = summary_info(summary)
    assert shown.model_dump() == {
        "summary": "Kettles boil.",
        "strategy": "extract",
        "language": "en",
        "cached": False,
        "steps": 1,
        "estimated_s": 2.0,
        "seconds": 1.5,
    }
    # FastAPI validates a returned shape again from its dump: the public names must be read too
    assert SummaryInfo.model_validate(shown.model_dump()) == shown


def test_a_summary_job_shows_its_overview_text_and_every_file() -> None:
    job = SummaryJob(
        id="j1",
        kb="manuals",
        files=[FileProgress("a.txt", 3.0, status="done", strategy="extract", seconds=2.5)],
        overview=True,
        estimated_s=3.0,
        overview_text="Both files are about kettles.",
    )
    shown = summary_job_info(job)
    assert shown.overview == "Both files are about kettles."
    assert [(f.file, f.status, f.strategy, f.seconds) for f in shown.files] == [
        ("a.txt", "done", "extract", 2.5)
    ]
    assert SummaryJobInfo.model_validate(shown.model_dump()) == shown
