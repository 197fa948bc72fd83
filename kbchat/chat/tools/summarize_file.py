"""Summarise one file of a knowledge base (the kept summary when the file is unchanged, else
made now with the fast ``extract`` strategy and kept)."""

from __future__ import annotations

from typing import Any

from kbchat.chat.tools import ToolContext, ToolError, ToolResult
from kbchat.types import Citation, ToolSpec

SUMMARY_CHARS = 1500


class SummarizeFile:
    """``summarize_file(file, kb?)``: a file's summary, cited as that file."""

    spec = ToolSpec(
        name="summarize_file",
        description="Summarise one file of the user's knowledge bases, named as the file list "
        "shows it (e.g. manual.pdf).",
        parameters={
            "type": "object",
            "properties": {
                "file": {"type": "string", "description": "The file's name."},
                "kb": {"type": "string", "description": "Its knowledge base (default: search)."},
            },
            "required": ["file"],
            "additionalProperties": False,
        },
    )
    examples = (
        "Summarize the file manual.pdf",
        "Give me a summary of report.docx",
        "What is the document guide.md about?",
        "总结一下 手册.pdf 这个文件",
        "概括 report.docx 的内容",
        "合同.docx 主要讲了什么？",
    )

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        from kbchat.chat.summaries import SummaryStore, summarize_file
        from kbchat.chat.summarize import Summary
        from kbchat.options import summary_options

        wanted = str(arguments.get("file", "")).strip()
        if not wanted:
            raise ToolError("which file? give its name as the file list shows it")
        kb_name = arguments.get("kb")
        names, note = context.resolve([str(kb_name)] if kb_name else None)
        services = context.services
        for name in names:
            kb = services.library.get(name)
            files = [r.name for r in kb.files() if r.status == "indexed"]
            match = next((f for f in files if f == wanted), None) or next(
                (f for f in files if f.rsplit("/", 1)[-1].lower() == wanted.lower()), None
            )
            if match is None:
                continue
            store = SummaryStore(kb.catalog.engine)
            options = summary_options(services.settings, strategy="auto")
            summary = None
            for event in summarize_file(
                kb, match, services.models.get(), store, options=options, cancel=context.cancel
            ):
                if isinstance(event, Summary):
                    summary = event
            if summary is None:
                raise ToolError(f"{match} could not be summarised")
            marker = context.cite(
                Citation(marker=0, kb=name, file=match, text=summary.text, score=1.0)
            )
            head = f"{note}\n" if note else ""
            return ToolResult(
                f"{head}[{marker}] Summary of {match}: {summary.text[:SUMMARY_CHARS]}"
            )
        raise ToolError(f"no indexed file named {wanted!r} in {', '.join(names)}")
