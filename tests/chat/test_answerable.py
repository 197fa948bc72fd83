"""Answerability evidence: do the passages hold what the question asks about?"""

from __future__ import annotations

import pytest

from kbchat.chat.answerable import (
    as_written,
    evidence,
    focus,
    key_terms,
    named_titles,
    options,
    support,
    terms_over,
)

# A biography with the sentence that answers, and the same article without it (the topic is
# there, the answer is not).
BIO = (
    "王小明\n王小明生于1970年，毕业于北京大学医学院。2006年，王小明晋升为社会医学教授。"
    "2010年，他出任医学院院长。"
)
BIO_WITHOUT = (
    "王小明\n王小明生于1970年，毕业于北京大学医学院。他曾在香港工作多年。2010年，他出任医学院院长。"
)
FANS = "型号XR-7700A为标准款离心风机，额定功率1.5千瓦。\n型号XR-7700B为加强款离心风机，额定功率2.2千瓦。"
PARK = (
    "Ridgeway Park\nRidgeway Park is a nature reserve in the north of the county. "
    "It covers 540 hectares of heath and wetland. Adders and nightjars breed there. "
    "A visitor centre sells maps. Its café serves lunch. The park opened to the public in 1972."
)
PARK_WITHOUT = (
    "Ridgeway Park\nRidgeway Park is a nature reserve in the north of the county. "
    "The visitor centre sells maps. The park opened to the public in 1972."
)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("王小明哪一年晋升为教授？", ["王小明", "晋升为", "教授"]),
        ("公司的股票代码是多少？", ["公司", "股票代码"]),
        ("保修期多长？", ["保修期"]),
        ("XR-7700C的额定功率是多少？", ["xr-7700c", "额定功率"]),
        ("How large is Ridgeway Park?", ["ridgeway", "park"]),
        ("How long is the warranty?", ["warranty"]),
        ("How did the test go?", ["test"]),  # a light verb says nothing of the topic
        ("How many players are in a team?", ["player", "team"]),
        ("Who directed the films?", ["direct", "film"]),
        ("Which team did both Ann Lee and Bo Chan play for?", ["team", "ann", "lee", "bo"]),
        # The words of a choice name the options, not what the question is about; how it
        # compares them is written in no passage.
        ("保修期更长的是水壶，还是搅拌机？", ["保修期", "水壶", "搅拌机"]),
        ("Which park is larger of the two, A Park or B Park?", ["park"]),
        ("Which is the largest park?", ["largest", "park"]),  # no choice: a superlative asks
        ("The LNW-80 and Amstrad PCW are both what kind of machine?", ["lnw-80"]),
        ("What is the term given to the period of the wars?", ["period", "wars"]),
    ],
)
def test_key_terms_leave_out_question_words_and_the_frame(
    question: str, expected: list[str]
) -> None:
    assert key_terms(question)[: len(expected)] == expected


def test_the_passage_holding_the_answer_holds_the_question() -> None:
    found = evidence("王小明哪一年晋升为教授？", [BIO])
    assert found.share == 1.0 and found.absent == ()


def test_the_same_article_without_the_answer_holds_only_its_subject() -> None:
    found = evidence("王小明哪一年晋升为教授？", [BIO_WITHOUT])
    assert found.share == pytest.approx(1 / 3)
    assert found.absent == ("晋升为", "教授")


def test_terms_far_apart_in_a_passage_are_not_one_place() -> None:
    # A place is a sentence with its neighbours under the first line: the dean's post and
    # the prize are both in the article, but five sentences apart.
    long_bio = BIO + "他喜欢下棋。他常去公园。他的学生很多。他在1999年获得院士奖。"
    found = evidence("王小明出任院长那年获得了什么奖？", [long_bio])
    assert 0 < found.share < 1.0


def test_a_neighbouring_part_number_is_not_evidence() -> None:
    found = evidence("XR-7700C的额定功率是多少？", [FANS])
    assert "xr-7700c" in found.absent and found.share == 0.5
    assert evidence("XR-7700B的额定功率是多少？", [FANS]).share == 1.0


def test_english_evidence_is_per_place_too() -> None:
    assert evidence("How many hectares does Ridgeway Park cover?", [PARK]).share == 1.0
    without = evidence("How many hectares does Ridgeway Park cover?", [PARK_WITHOUT])
    assert without.share < 0.8 and "hectar" in without.absent


def test_a_question_of_only_question_words_has_nothing_to_miss() -> None:
    assert evidence("是什么？", [FANS]).share == 1.0


def test_support_is_the_question_share_where_the_answer_was_read() -> None:
    question = "王小明哪一年晋升为教授？"
    assert support("2006年[1]", question, [BIO]) == 1.0
    # 2010 is in the article, in a sentence about becoming dean: not where the question is.
    assert support("王小明在2010年晋升为教授。", question, [BIO_WITHOUT]) == pytest.approx(1 / 3)
    assert support("1972", "When did Ridgeway Park open?", [PARK]) == 1.0
    assert support("540 hectares", "When did Ridgeway Park open?", [PARK]) < 1.0


def test_support_of_an_answer_with_no_new_words_is_full() -> None:
    assert support("王小明晋升为教授。", "王小明哪一年晋升为教授？", [BIO_WITHOUT]) == 1.0
    assert support("全是新词", "王小明哪一年晋升为教授？", [BIO]) == 0.0


# Two facts side by side: the return period and the warranty.
RETURNS_ZH = (
    "售后政策\n本店商品自签收之日起7天内可以无理由退货，退货期限以物流签收时间为准。"
    "整机保修期限为两年，电池保修一年。"
)
RETURNS_EN = (
    "Returns and warranty\nYou can return any item within 30 days of delivery. "
    "The warranty lasts two years from the date of purchase."
)


def test_an_answer_copied_from_the_fact_beside_the_question_is_not_supported() -> None:
    question = "退货期限是多少天？"
    assert support("7天[1]", question, [RETURNS_ZH]) == 1.0
    # The warranty sentence holds 期限 but not 退货; its neighbour holds both: the question is
    # about the neighbour, so 两年 is read beside its place.
    assert support("两年", question, [RETURNS_ZH]) == 0.0
    assert support("一年", question, [RETURNS_ZH]) == 0.0
    en = "How many days do I have to return an item?"
    assert support("30 days", en, [RETURNS_EN]) == 1.0
    assert support("Two years.", en, [RETURNS_EN]) < 0.5


def test_a_neighbour_still_lends_the_subject_a_pronoun_stands_for() -> None:
    bio = "王小明\n他热爱教学。梁卓伟出生于1960年。他于2013年成为教授。"
    assert support("2013年", "梁卓伟哪一年成为教授？", [bio]) == 1.0


LOONEY = (
    "Don Looney\nDon Looney was an American football end. "
    "He played for the Philadelphia Eagles in 1940."
)
JACKSON = (
    "DeSean Jackson\nDeSean Jackson is an American football wide receiver. "
    "He was drafted by the Philadelphia Eagles in 2008."
)
PIONEER = (
    "Bridgeport\nIn August 1901 Gustave Whitehead claimed to have flown near Bridgeport, "
    "Connecticut, two years before the Wright brothers."
)
WHITEHEAD = (
    "Gustave Whitehead\nGustave Whitehead was a German-born engineer. "
    "He died on 10 October 1927 in Bridgeport."
)


def test_a_question_over_two_passages_is_supported_by_both() -> None:
    both = "Which NFL team did both Don Looney and DeSean Jackson play for?"
    # Each passage holds half the question; both hold the answer.
    assert support("Philadelphia Eagles", both, [LOONEY]) < 0.5
    assert support("Philadelphia Eagles", both, [LOONEY, JACKSON]) > 0.7
    bridge = "When did the aviation pioneer who claimed to have flown near Bridgeport die?"
    # The answer is in the subject's own passage; the other one names that subject.
    assert support("10 October 1927", bridge, [WHITEHEAD]) < 0.5
    assert support("10 October 1927", bridge, [WHITEHEAD, PIONEER]) > 0.7
    # Unlinked passages lend nothing: the answer's passage stands alone.
    assert support("10 October 1927", bridge, [WHITEHEAD, LOONEY]) < 0.5


def test_a_linked_passage_that_takes_the_question_lends_nothing() -> None:
    # The returns passage names the kettle the warranty passage is about, and holds every
    # key term the warranty's sentence holds and more: "两年" is the warranty, not returns.
    warranty = "KT-300 保修\nKT-300 整机保修两年。"
    returns = "KT-300 水壶\n退货期限为收货后7天。"
    question = "KT-300 水壶的退货期限是多少天？"
    # "KT-300 水壶", the returns passage's title, is one key term: the warranty's place
    # holds none of the three
    assert support("两年", question, [warranty, returns]) == 0.0
    assert support("7天", question, [warranty, returns]) == 1.0


def test_a_comparison_finds_its_evidence_in_two_passages() -> None:
    question = "Who was born earlier, Thomas Wolfe or Margaret Wilson?"
    wolfe = "Thomas Wolfe\nThomas Wolfe was an American novelist. He was born on October 3, 1900."
    wilson = "Margaret Wilson\nMargaret Wilson was an American author. She was born in 1882."
    assert evidence(question, [wolfe]).share == 0.5  # one of the two options
    both = evidence(question, [wolfe, wilson])
    assert both.share == 1.0 and both.absent == ()
    # The articles' other paragraphs: the names without what is compared are no evidence.
    other_wolfe = "Thomas Wolfe\nThomas Wolfe was an American novelist. His books are long."
    other_wilson = "Margaret Wilson\nMargaret Wilson was an American author of novels."
    assert evidence(question, [other_wolfe, other_wilson]).share == pytest.approx(2 / 5)
    # Two places about the same person are one place, not a comparison.
    assert evidence(question, [wolfe, other_wolfe]).share == 0.5


def test_a_life_span_after_a_name_states_the_birth() -> None:
    question = "Who was born earlier, Ada Brook or Carl Dunn?"
    ada = "Ada Brook\nAda Brook (March 2, 1861 – May 9, 1930) was a Welsh painter."
    carl = "Carl Dunn\nCarl Dunn (1870–1941) was a Danish composer of songs."
    assert evidence(question, [ada, carl]).share == 1.0
    assert (
        evidence("鲁一哪年出生？", ["鲁一\n鲁一（1881年9月25日－1936年10月19日），作家。"]).share
        == 1.0
    )
    # Dates in parentheses later in an article are no birth.
    later = "Carl Dunn\nCarl Dunn was a composer. He wrote songs. His opera (1901–1903) failed."
    assert evidence(question, [ada, later]).absent == ()  # Ada's place holds "born" itself
    assert evidence("When was Carl Dunn born?", [later]).absent == ("born",)


def test_an_answer_to_a_comparison_is_read_from_one_option_s_passage() -> None:
    question = "The Kestrel K2 and Osprey O5 are both what kind of vehicle?"
    kestrel = "Kestrel K2\nThe Kestrel K2 is an electric scooter made in Taiwan since 2019."
    osprey = "Osprey O5\nThe Osprey O5 is a range of electric scooters sold in Spain."
    answer = "The Kestrel K2 and Osprey O5 are both electric scooters."
    # "vehicle" is in neither: each passage holds its own name and the answer.
    assert support(answer, question, [osprey, kestrel]) == pytest.approx(4 / 5)
    # Without the other option's passage the answer's place holds one option only.
    assert support(answer, question, [osprey]) == pytest.approx(2 / 5)


def test_the_two_hops_of_a_bridge_question_are_one_place() -> None:
    question = (
        "Before composing music for the game which contains Chocobos and Moogles, "
        "what cover band was he involved in?"
    )
    composer = (
        "Nobuo Uematsu\nNobuo Uematsu composed the music of Final Fantasy. Before that he "
        "played keyboards in the cover band The Black Mages."
    )
    game = "Final Fantasy\nFinal Fantasy is a video game series with Chocobos and Moogles."
    assert evidence(question, [composer]).share == 0.5
    both = evidence(question, [composer, game])
    assert both.share == pytest.approx(0.8) and both.absent == ("contain", "involv")
    # A passage that does not name the other's subject is another topic, not a second hop.
    unlinked = composer.replace("Final Fantasy", "a famous series")
    assert evidence(question, [unlinked, game]).share == 0.5
    # Two paragraphs of one article share their subject: they do not pair up.
    more = "Nobuo Uematsu\nHis game music for Final Fantasy features Chocobos and Moogles."
    assert evidence(question, [composer.replace("Final Fantasy", "films"), more]).share == 0.5


def test_a_name_with_accented_letters_is_one_key_term() -> None:
    # jieba cut "Käthe" into "k", "ä", "the": the name vanished from the question's terms.
    # Terms are compared without accents, so "Kathe" typed plainly is the same term.
    expected = ["party", "includ", "kathe", "leichter"]
    assert key_terms("Which party included Käthe Leichter?") == expected
    assert key_terms("Which party included Kathe Leichter?") == expected
    passage = "Käthe Leichter\nKäthe Leichter was an Austrian economist and a member of the SPÖ."
    assert evidence("Which party included Käthe Leichter?", [passage]).absent == ("party", "includ")


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Which warranty is longer, kettle or blender?", ["kettle", "blender"]),
        (
            "Who was born earlier, Thomas Wolfe or Margaret Wilson?",
            ["Thomas Wolfe", "Margaret Wilson"],
        ),
        ("保修期更长的是水壶，还是搅拌机？", ["水壶", "搅拌机"]),
        ("How long is the warranty?", []),
    ],
)
def test_a_choice_question_offers_its_options(question: str, expected: list[str]) -> None:
    assert options(question) == expected


def test_a_choice_between_common_nouns_finds_its_evidence_in_two_passages() -> None:
    question = "Which warranty is longer, kettle or blender?"
    kettle = "Kettle\nThe kettle warranty lasts two years."
    blender = "Blender\nThe blender warranty lasts five years."
    assert evidence(question, [kettle]).share == 0.5
    assert evidence(question, [kettle, blender]).share == 1.0


def test_an_answer_naming_the_passage_subject_is_read_from_the_whole_passage() -> None:
    bio = (
        "Käthe Leichter\nKäthe Leichter was an Austrian economist. She studied in Vienna. "
        "In 1925 she founded the women's department of the Vienna Chamber of Labour."
    )
    question = "Who founded the women's department of the Vienna Chamber of Labour?"
    assert support("Käthe Leichter [1]", question, [bio]) > 0.8
    assert support("Kathe Leichter", question, [bio]) > 0.8  # typed without the accent
    # A name that is not the passage's subject is still judged by its own sentence.
    assert support("Otto Bauer", question, [bio + " Otto Bauer led the party."]) < 0.55


def test_an_answer_naming_the_bridge_entity_is_read_from_both_hops() -> None:
    question = "Which player on the cover of Gridiron 3 had played college football at Tulane?"
    game = (
        "Gridiron 3\nGridiron 3 is a football video game released in 2006. Its cover shows "
        "the quarterback Dale Ostrom beside a stadium."
    )
    player = (
        "Dale Ostrom\nDale Ernest Ostrom ( ; born May 2, 1979) is a retired quarterback. "
        "He was drafted in 2001. He played college football at Tulane."
    )
    answer = "Dale Ernest Ostrom played college football at Tulane."
    # The middle name is only in the biography, whose sentence holding it says little of
    # the question; the game's article names the player and holds the first hop.
    assert support(answer, question, [game, player]) == pytest.approx(7 / 8)  # not "player"
    assert support(answer, question, [player]) < 0.55  # one hop: the cover is not there


def test_an_answer_that_restates_its_subject_first_is_judged_by_its_answering_sentence() -> None:
    bio = (
        "李小红\n李小红，本名李红英，祖籍广东，香港著名女演员、歌手。2013年她加入电视台。"
        "她喜欢旅行。她常去海边。她的朋友很多。她是2008年度香港小姐竞选季军。"
    )
    question = "李小红是哪一年度香港小姐竞选季军？"
    one = "她是2008年度香港小姐竞选季军。"
    # Most of its new words come from the first sentence, which holds only her name.
    two = "李小红，本名李红英，祖籍广东，香港著名女演员、歌手。" + one
    assert support(one, question, [bio]) == 1.0
    assert support(two, question, [bio]) == 1.0
    # The restated sentence cannot carry a year read from elsewhere: the sentence that
    # states a number the question does not is the one judged.
    copied = "李小红，本名李红英，是香港小姐竞选季军。她在2013年加入电视台。"
    assert support(copied, question, [bio]) < 0.55


def test_a_faq_answer_is_supported_by_its_question_line() -> None:
    faq = (
        "Shop FAQ\nQ: Does the shop send my address anywhere?\nA: No. Everything stays on "
        "your computer.\n\nQ: How long is the warranty?\nA: Two years."
    )
    question = "Does the shop send my address anywhere?"
    assert support("No. Everything stays on your computer.", question, [faq]) == 1.0
    # A fact beside the answer's sentence still takes the question.
    en = "How many days do I have to return an item?"
    assert support("Two years.", en, [RETURNS_EN]) < 0.5


def test_the_items_of_a_list_answer_are_judged_together() -> None:
    history = (
        "波兰联邦\n波兰联邦是一个历史国家。其首都在克拉科夫。欧罗巴是其所在的大洲。"
        "它的军队曾到达法国东北部。它的文化很丰富。"
    )
    question = "波兰联邦统治哪两个地方？"
    # Each item alone sits in a place naming the federation; the list as one does not.
    answer = "根据资料，波兰联邦统治的两个地方是：\n1. 欧罗巴\n2. 法国东北部"
    assert support(answer, question, [history]) == support(
        answer.replace("\n", " "), question, [history]
    )


def test_focus_is_the_place_holding_most_of_the_question_as_written() -> None:
    passages = [
        "Kettles\nThe K3 kettle boils water. It has a two year warranty.",
        "侯活·韦比\n侯活·韦比是球证。他执法首场国际赛。2006年他执法锦标赛。"
        "在2007年的联赛杯决赛中由韦比执法。韦比在这场比赛中出示三面红牌。2010年他执法世界杯。"
        "韦比曾经是警长。他退休了。",
    ]
    found = focus("侯活·韦比在哪场比赛中出示了三面红牌？", passages)
    assert found is not None and found.index == 1 and found.share == 1.0
    assert found.excerpt == (
        "侯活·韦比 在2007年的联赛杯决赛中由韦比执法。 韦比在这场比赛中出示三面红牌。 "
        "2010年他执法世界杯。 韦比曾经是警长。"
    )
    assert focus("保修期多长？", passages) is None  # no place holds any key term


SUBORDER = (
    "索齿兽目\n索齿兽目是已灭绝的水中哺乳动物。"
    "其他科学家因为牠们的牙齿及骨骼形态，认为牠们是两栖的草食性动物，生活于滨岸带。"
)


def test_a_title_the_segmenter_cuts_into_pieces_is_one_key_term() -> None:
    question = "索齿兽目为什么会得名？"
    assert key_terms(question) == ["索齿", "兽目", "得名"]
    assert terms_over(question, [SUBORDER]) == ["索齿兽目", "得名"]
    assert terms_over(question, ["无关\n一段没有标题的话。"]) == ["索齿", "兽目", "得名"]


def test_a_question_names_the_longest_of_nested_titles_in_its_own_order() -> None:
    titles = ["前肛鳗", "黑尾前肛鳗", "高氏前肛鳗", "体长", ""]
    assert named_titles("黑尾前肛鳗的体长是多少？", titles) == ["黑尾前肛鳗", "体长"]
    assert named_titles("体长和前肛鳗", titles) == ["体长", "前肛鳗"]
    assert named_titles("无关的问题", titles) == []


def test_an_answer_from_a_place_holding_only_the_subject_s_pieces_is_not_supported() -> None:
    # Counted in pieces the title held two of three terms, above chat.min_coverage (0.55),
    # though the place says nothing of how the order got its name.
    answer = "索齿兽目因为牙齿及骨骼形态显示牠们是两栖的草食性动物。"
    assert support(answer, "索齿兽目为什么会得名？", [SUBORDER]) == pytest.approx(1 / 2)


def test_a_missing_key_term_is_named_as_the_question_writes_it() -> None:
    question = "Which of Tobias Wren and Maren Solberg directed films?"
    assert [as_written(t, question) for t in key_terms(question)[:2]] == ["tobias", "wren"]
    assert as_written("direct", question) == "directed"
    assert as_written("保修期", "保修期多长？") == "保修期"
