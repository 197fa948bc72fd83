import pytest
from rich.console import Console

from kbchat.cli import chat
from kbchat.types import Answer, Citation

QUOTE = "知识库的所有文件都保存在你自己的电脑上，只有你自己能看到它们，不会上传到任何地方。"


def test_a_chinese_quote_stays_on_its_citation_line_in_a_narrow_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(chat, "err", Console(stderr=True, width=40))
    cited = Citation(1, "docs", "faq.zh.txt", QUOTE, 0.71, quote=QUOTE)
    nearest = Citation(0, "docs", "guide.zh.md", QUOTE, 0.42, quote=QUOTE)
    note = "declined: the closest passage holds 40% of the question's key terms (chat.min_evidence)"
    answer = Answer("只有你自己。[1]", "m", citations=[cited], closest=[nearest], notices=[note])
    chat.print_stream(iter(["只有你自己。[1]", answer]))
    lines = capsys.readouterr().err.splitlines()
    assert f"  [1] faq.zh.txt (score 0.71): {QUOTE}" in lines
    assert f"  - guide.zh.md (score 0.42): {QUOTE}" in lines
    assert f"note: {note}" in lines  # whole, not wrapped at the console's width
