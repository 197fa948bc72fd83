"""Checks of questions and answers against passages, with no model."""

from __future__ import annotations

import pytest

from kbchat.chat.grounding import (
    check_claims,
    content_words,
    items,
    missing_items,
    normalise,
    occurs,
    sentences,
)

FANS = [
    "型号XR-7700A为标准款离心风机，额定功率1.5千瓦，噪声不高于62分贝。",
    "型号XR-770为早期型号，已于2024年停产，额定功率0.75千瓦。",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("XR-7700C的额定功率是多少？", ["XR-7700C"]),
        ("《战国无双3》是由哪两个公司合作开发的？", ["战国无双3"]),
        ("Is kbchat v2.3.1 compatible with Python 3.11?", ["v2.3.1", "3.11", "Python"]),
        (
            "What provinces comprise the area where the 1944 San Juan earthquake took place?",
            ["1944", "San Juan"],
        ),
        ("公司的股票代码是多少？", []),
        ("How do I change the port of the web server?", []),
    ],
)
def test_items_a_question_names(text: str, expected: list[str]) -> None:
    assert items(text) == expected


def test_a_code_is_not_found_inside_a_longer_code() -> None:
    haystack = normalise("\n".join(FANS))
    assert occurs("XR-7700A", haystack) and occurs("xr-770", haystack)
    assert not occurs("XR-7700", haystack)  # only a prefix of XR-7700A
    assert missing_items("XR-7700C的功率是多少？", FANS) == ["XR-7700C"]
    assert missing_items("ＸＲ-７７００Ａ的功率是多少？", FANS) == []  # full-width forms match


def test_numbers_match_with_or_without_thousands_separators() -> None:
    assert occurs("1,000", normalise("costs 1000 yuan"))
    assert missing_items("Which model costs 1000 yuan?", ["It costs 1,000 yuan."]) == []


def test_invented_numbers_and_names_are_unsupported() -> None:
    invented = check_claims(
        "修改 ~/.kbchat/config.yaml 中的 port: 8080，然后运行 kbchat restart",
        "How do I change the port of the web server?",
        FANS,
    )
    assert {"8080", "~/.kbchat/config.yaml"} <= set(invented.unsupported)
    made_up = check_claims("XR-7700A的外壳是红色的，重量为五公斤。", "XR-7700A是什么颜色？", FANS)
    assert made_up.unsupported == () and made_up.support < 0.5
    supported = check_claims("XR-7700A的额定功率是1.5千瓦 [1]", "XR-7700A的功率？", FANS)
    assert supported.unsupported == () and supported.support > 0.8


def test_an_answer_without_content_words_is_not_judged_by_support() -> None:
    check = check_claims("是的。", "XR-770停产了吗？", FANS)
    assert check.words == 0 and check.support == 1.0


def test_an_answer_translating_a_passage_in_another_language_is_not_judged_on_its_words() -> None:
    # An English answer over a Chinese file: names and words cannot match, numbers must.
    translated = check_claims(
        "The XR-7700A is a standard centrifugal fan rated at 1.5 kW.", "XR-7700A power?", FANS
    )
    assert translated.unsupported == () and translated.words == 0
    wrong_number = check_claims("It is rated at 9.5 kW.", "XR-7700A power?", FANS)
    assert wrong_number.unsupported == ("9.5",)
    assert missing_items("Who designed the Shirley Valentine fan?", FANS) == []
    assert missing_items("What does the XR-9000 weigh?", FANS) == ["XR-9000"]


def test_names_decline_only_when_none_of_them_is_in_the_passages() -> None:
    passages = [
        "Kurt Fuller is an American actor from Stockton, California.",
        "Psych is an American detective comedy-drama series created by Steve Franks.",
    ]
    multi_hop = "Kurt Fuller appeared in which American Detective Comedy Drama series?"
    assert missing_items(multi_hop, passages) == []  # a description, partly in the files
    absent = "For whom did Lucy Saunders write essays in the collection “Beer Hunter”?"
    assert missing_items(absent, passages) == ["Beer Hunter", "Lucy Saunders"]
    # Codes stay strict: one missing code is enough.
    assert missing_items("Kurt Fuller in XR-9?", passages) == ["XR-9"]


def test_what_the_reader_would_type_must_be_in_the_files_verbatim() -> None:
    from kbchat.chat.grounding import literals

    passages = [
        "Set environment variables such as KBCHAT_HOME on the command line. "
        "The server listens on port 7860; kbchat serve starts it."
    ]
    question = "How do I change the port of the web server?"
    invented = "Change the port by setting the `PORT` environment variable on the command line."
    assert check_claims(invented, question, passages).unsupported == ("PORT",)
    invented_env = "Set KBCHAT_PORT=8080 before starting."
    assert "KBCHAT_PORT" in check_claims(invented_env, question, passages).unsupported
    real = "Run `kbchat serve`; set KBCHAT_HOME to move its data."
    assert check_claims(real, question, passages).unsupported == ()
    # a command's arguments are the reader's own; placeholders are examples
    assert literals("Run `kbchat serve --port 8080` then `kbchat kb add <name> ...`") == [
        "kbchat",
        "--port",
    ]


def test_a_misspelt_quoted_title_is_found_but_a_different_one_is_not() -> None:
    plays = ["David Mamet won the Pulitzer Prize for Glengarry Glen Ross (1984) and wrote Oleanna."]
    # One letter dropped, and the question mark the question glued inside the quotes.
    assert missing_items('Which prize did the author of "Glengary Glen Ross?" win?', plays) == []
    assert missing_items('Who wrote "Speed the Plow"?', plays) == ["Speed the Plow"]
    releases = ["Windows 2000 shipped in February 2000."]
    assert missing_items('When did "Windows 2003" ship?', releases) == ["Windows 2003"]
    assert missing_items("《红楼梦》的作者是谁？", ["《红楼》是一本书。"]) == ["红楼梦"]


def test_content_words_keep_accented_words_whole() -> None:
    assert content_words("Doñana National Park is larger.") == [
        "doñana",
        "national",
        "park",
        "larger",
    ]
    assert "xr-7700c" in content_words("XR-7700C的功率是1.5千瓦")


def test_names_match_with_or_without_accents_and_short_titles_one_letter_off() -> None:
    parks = ["Doñana National Park\nDoñana National Park covers 543 km2."]
    assert missing_items("How large is Donana National Park?", parks) == []
    operas = ["Rusalka\nRusalka is an opera by Dvořák. It premiered in Prague in 1901."]
    assert missing_items('Where did "Rusalca" premiere?', operas) == []
    assert missing_items('Where did "Lohengrin" premiere?', operas) == ["Lohengrin"]
    assert missing_items('Where did "Rusalkas X" premiere?', operas) == ["Rusalkas X"]


def test_a_comparison_answer_adds_no_claim_with_than() -> None:
    parks = [
        "Doñana National Park\nDoñana National Park covers 543 km2.",
        "Timanfaya National Park\nTimanfaya National Park covers 51.07 km2.",
    ]
    question = "Which is larger, Doñana National Park or Timanfaya National Park?"
    answer = "Doñana National Park is larger than Timanfaya National Park. [1][2]"
    assert check_claims(answer, question, parks).support == 1.0


def test_a_number_written_another_way_is_found() -> None:
    # An ordinal states the number the passage gives plainly.
    passages = ["We move the product launch of the Orion lamp to 14 May."]
    assert (
        check_claims("The launch is on May 14th.", "When is the launch?", passages).unsupported
        == ()
    )
    assert check_claims(
        "The launch is on May 15th.", "When is the launch?", passages
    ).unsupported == ("15th",)
    # An English answer over a Chinese passage writes its numerals in digits.
    leave = ["员工每年有十五天带薪年假。"]
    question = "How many days of annual leave do employees get?"
    assert check_claims("Employees get 15 days.", question, leave).unsupported == ()
    assert check_claims("Employees get 16 days.", question, leave).unsupported == ("16",)


def test_a_semicolon_inside_parentheses_does_not_end_a_sentence() -> None:
    text = "Dale Ostrom ( ; born May 2, 1979) is a quarterback; he retired. 鲁一（注；释）是作家。"
    assert sentences(text) == [
        "Dale Ostrom ( ; born May 2, 1979) is a quarterback;",
        "he retired. 鲁一（注；释）是作家。",
    ]
    # An unclosed parenthesis is text like any other.
    assert sentences("a (b; c") == ["a (b;", "c"]
