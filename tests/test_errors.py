from kbchat.errors import NotFound, not_found_among

FILES = [f"doc{n:02}.txt" for n in range(14)]


def test_the_closest_name_is_suggested_and_a_long_list_says_how_many_more() -> None:
    error = not_found_among("file", "doc1.txt", "knowledge base 'docs'", FILES)
    assert isinstance(error, NotFound)
    message = str(error)
    assert message.startswith("no file 'doc1.txt' in knowledge base 'docs'; did you mean 'doc")
    assert "? It has 14 files: doc00.txt, doc01.txt" in message
    assert "doc09.txt, … (4 more)" in message
    assert "doc10.txt" not in message


def test_no_suggestion_when_nothing_is_close_and_short_lists_are_whole() -> None:
    message = str(not_found_among("file", "zzz", "knowledge base 'a'", ["faq.md"]))
    assert message == "no file 'zzz' in knowledge base 'a'; it has 1 file: faq.md"


def test_an_empty_place_says_so() -> None:
    message = str(not_found_among("file", "x.pdf", "knowledge base 'a'", []))
    assert message == "no file 'x.pdf' in knowledge base 'a'; it has none"
