"""Search the knowledge bases the caller may read; the passages become the answer's sources."""

from __future__ import annotations

from typing import Any

from kbchat.chat.tools import ToolContext, ToolError, ToolResult
from kbchat.types import Citation, ToolSpec

PASSAGE_CHARS = 600
"""Characters of each passage shown to the model (the prompt budget of a small model)."""


class KbSearch:
    """``kb_search(query, kb?)``: the best passages, marked [n] for citation."""

    spec = ToolSpec(
        name="kb_search",
        description="Search the user's documents (knowledge bases) for passages about a "
        "question. Use it for anything the user's files may say: products, policies, "
        "procedures, numbers in documents.",
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "kb": {"type": "string", "description": "One knowledge base (default: all)."},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    )
    examples = (
        "What does the manual say about the warranty period?",
        "How do I add files to a knowledge base?",
        "What is the noise level of the XR-7700A according to the spec sheet?",
        "Which embedder is the default in our documentation?",
        "我们的退货政策是什么？",
        "文档里说保修期多长？",
        "说明书里怎么重置设备？",
        "合同里约定的交付日期是哪天？",
    )

    def __init__(self, top_k: int = 4) -> None:
        self.top_k = top_k

    def arguments_from(self, question: str) -> dict[str, Any] | None:
        """The question is the query (as in a plain knowledge-base answer): a small model
        asked to write one adds words and invents knowledge-base names."""
        return {"query": question}

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        from kbchat.options import answer_search_options
        from kbchat.retrieve.search import retrieve

        query = str(arguments.get("query", "")).strip()
        if not query:
            raise ToolError("the query is empty")
        kb = arguments.get("kb")
        names, note = context.resolve([str(kb)] if kb else None)
        if not names:
            raise ToolError("there is no knowledge base to search")
        services = context.services
        kbs = [services.library.get(name) for name in names]
        options = answer_search_options(services.settings, top_k=self.top_k)
        hits = retrieve(kbs, query, options, reranker=services.reranker()).hits
        head = f"{note}\n" if note else ""
        if not hits:
            return ToolResult(f"{head}No passage in {', '.join(names)} matches {query!r}.")
        lines = []
        for hit in hits:
            marker = context.cite(
                Citation(
                    marker=0,
                    kb=hit.kb,
                    file=hit.file,
                    text=hit.text,
                    score=hit.score,
                    page=hit.page,
                    sheet=hit.sheet,
                    slide=hit.slide,
                )
            )
            where = hit.file + (f", page {hit.page}" if hit.page else "")
            lines.append(f"[{marker}] ({where}) {hit.text[:PASSAGE_CHARS]}")
        return ToolResult(head + "\n".join(lines))
