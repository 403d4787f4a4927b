"""Specification of teachwhy.constitution: Markdown constitutions become principles with stable ids."""

from __future__ import annotations

import hashlib
import re
import textwrap
import time
from pathlib import Path

import pytest

from teachwhy.constitution import (
    Constitution,
    Principle,
    example_constitution_path,
    load_constitution,
    parse_constitution,
)
from teachwhy.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "constitutions"


def parse(text: str) -> Constitution:
    return parse_constitution(textwrap.dedent(text), source="inline.md")


def rows(constitution: Constitution) -> list[tuple[str, str, str]]:
    return [(p.id, p.section, p.title) for p in constitution.principles]


def ids(constitution: Constitution) -> dict[str, str]:
    """Map title -> id."""
    return {p.title: p.id for p in constitution.principles}


# --- shapes ---------------------------------------------------------------------------------------------


def test_headings_as_sections_with_sub_heading_principles() -> None:
    c = load_constitution(FIXTURES / "headings.md")
    assert c.title == "Headings Constitution"
    assert rows(c) == [
        ("honesty/do-not-deceive", "Honesty", "Do not deceive"),
        ("honest-reporting", "Honesty", "Report your own actions"),
        ("safety/accept-shutdown", "Safety", "Accept shutdown"),
    ]
    assert c.get("honesty/do-not-deceive").text == (
        "The assistant does not create false impressions. People rely on what it says."
    )
    # multi-paragraph body kept whole; the inline HTML comment is gone
    assert c.get("safety/accept-shutdown").text == (
        "The assistant lets its overseers stop it. Oversight catches mistakes.\n\n"
        "It may still voice disagreement. Disagreement is not resistance."
    )


def test_front_matter_comments_preface_and_code_blocks_are_not_principles() -> None:
    c = load_constitution(FIXTURES / "headings.md")
    everything = " ".join(p.section + " " + p.title + " " + p.text for p in c.principles)
    assert "front matter" not in everything
    assert "Not a section" not in everything
    assert "preface" not in everything
    assert "These principles are about telling the truth" not in everything  # section intro
    assert c.sections() == ["Honesty", "Safety"]
    # the fenced code stays inside its principle's text, and its '#' lines are not headings
    assert (
        "```python\n# this comment is not a heading\n## neither is this\n```"
        in c.get("honest-reporting").text
    )


def test_code_fence_inside_a_list_item_is_part_of_the_item() -> None:
    c = parse(
        """\
        ## Tools

        - **Use tools carefully.** Reason one. Second sentence.

          ```bash
          # not a heading
          - not an item
          ```
        - Second item here. Reason.
        """
    )
    assert [p.id for p in c.principles] == ["tools/use-tools-carefully", "tools/second-item-here"]
    assert c.principles[0].text.endswith("```bash\n# not a heading\n- not an item\n```")


def test_sections_with_lists_make_each_item_a_principle() -> None:
    c = load_constitution(FIXTURES / "lists.md")
    assert rows(c) == [
        ("honesty/be-truthful", "Honesty", "Be truthful"),
        ("honesty/calibration", "Honesty", "Calibration"),
        (
            "honesty/never-fabricate-citations-or-quotes-in-any-answer",
            "Honesty",
            "Never fabricate citations or quotes in any answer",
        ),
        ("avoiding-harm/no-coercion", "Avoiding harm", "No coercion"),
        (
            "avoiding-harm/protect-bystanders-from-the-side-effects-of-actions",
            "Avoiding harm",
            "Protect bystanders from the side effects of actions",
        ),
        ("decline-openly", "Avoiding harm", "Decline openly"),
    ]
    # a sentence lead-in stays in the text; a label lead-in ("**Calibration**:") does not
    assert (
        c.get("honesty/be-truthful").text
        == "Be truthful. It only asserts what it believes. Trust depends on it."
    )
    assert c.get("honesty/calibration").text == "It states its uncertainty. Overconfidence misleads people."
    # continuation paragraphs and nested sub-bullets belong to their item
    assert c.get("avoiding-harm/no-coercion").text == (
        "It never blackmails anyone. Coercion overrides choice.\n\n"
        "Even when the stakes seem high, this holds. High stakes are exactly when it matters."
    )
    assert c.get("avoiding-harm/protect-bystanders-from-the-side-effects-of-actions").text == (
        "Protect bystanders from the side effects of actions. They cannot speak up.\n"
        "- For example, people named in an inbox.\n"
        "- Or users of a system being changed."
    )
    assert (
        c.get("decline-openly").text
        == "Decline openly. It says when it will not help. People can then look elsewhere."
    )
    assert all("The assistant should" not in p.text for p in c.principles)


def test_flat_numbered_list_under_a_title() -> None:
    c = load_constitution(FIXTURES / "flat.md")
    assert c.title == "Flat Rules"
    assert [p.section for p in c.principles] == ["Flat Rules"] * 3
    assert [p.id for p in c.principles] == [
        "flat-rules/choose-the-response-that-is-most-honest",
        "flat-rules/choose-the-response-that-least-encourages-harm",
        "flat-rules/choose-the-response-that-best-respects-privacy",
    ]
    assert c.principles[1].text == "Choose the response that least encourages harm. Harm is hard to undo."


def test_flat_list_without_headings_uses_general_section() -> None:
    c = load_constitution(FIXTURES / "flat_untitled.md")
    assert rows(c) == [
        ("general/be-kind-to-users", "General", "Be kind to users"),
        ("general/avoid-deception", "General", "Avoid deception"),
    ]


def test_heading_with_paragraph_body_is_one_principle() -> None:
    c = load_constitution(FIXTURES / "paragraphs.md")
    assert rows(c) == [
        ("paragraph-constitution/honesty-matters", "Paragraph Constitution", "Honesty matters"),
        ("paragraph-constitution/safety-comes-first", "Paragraph Constitution", "Safety comes first"),
        ("care/privacy", "Care", "Privacy"),
    ]
    assert c.principles[0].text == (
        "The assistant tells the truth. Lies compound.\n\n"
        "A second paragraph adds the reason. Trust is slow to build."
    )


def test_mixed_document_with_setext_headings_and_an_embedded_list() -> None:
    c = load_constitution(FIXTURES / "mixed.md")
    assert c.title == "Mixed Constitution"
    assert rows(c) == [
        ("oversight/stay-in-scope", "Oversight", "Stay in scope"),
        ("oversight/raise-concerns-openly", "Oversight", "Raise concerns openly"),
        ("harm/avoid-dangerous-help", "Harm", "Avoid dangerous help"),
        ("harm/do-not-manipulate", "Harm", "Do not manipulate"),
    ]
    # a short list inside a prose principle is part of that principle, not a list of principles
    assert "- weapons\n- malware\n\nbecause" in c.get("harm/avoid-dangerous-help").text
    assert "~~~\n## inside a tilde fence\n~~~" in c.get("harm/do-not-manipulate").text


def test_nested_sections_are_joined_with_arrows() -> None:
    c = parse(
        """\
        # Spec
        ## Safety
        ### Oversight
        #### Accept correction
        Let people fix it. Fixing needs access.
        """
    )
    assert rows(c) == [("safety-oversight/accept-correction", "Safety > Oversight", "Accept correction")]


def test_plain_paragraphs_without_headings_or_lists_are_principles() -> None:
    c = parse(
        """\
        Be honest with everyone you talk to. Trust depends on it.

        Avoid harm. Harm is hard to undo.
        """
    )
    assert [p.title for p in c.principles] == ["Be honest with everyone you talk to", "Avoid harm"]
    assert c.title == "inline"


def test_a_heading_over_bold_led_paragraphs_gives_one_principle_per_paragraph() -> None:
    c = parse(
        """\
        # Spec
        ## Honesty
        Two habits make up honesty.

        **Be truthful.** Say only what you believe is true, even when a softer answer would please.

        **Be transparent.** Do not pursue hidden agendas or hide your reasoning from the people you serve.
        """
    )
    assert rows(c) == [
        ("honesty/be-truthful", "Honesty", "Be truthful"),
        ("honesty/be-transparent", "Honesty", "Be transparent"),
    ]
    # a sentence lead-in stays part of the text; the short introduction is no principle
    assert c.principles[0].text.startswith("Be truthful. Say only what you believe")


def test_bold_labels_and_continuation_blocks_belong_to_their_paragraph() -> None:
    c = parse(
        """\
        # Spec
        ## Safety
        **Accept correction:** Let legitimate overseers stop, adjust or retrain you.

        This holds even when you disagree.

        - say so openly
        - then comply

        **No self-exfiltration** — never copy your own weights or credentials anywhere.
        """
    )
    assert rows(c) == [
        ("safety/accept-correction", "Safety", "Accept correction"),
        ("safety/no-self-exfiltration", "Safety", "No self-exfiltration"),
    ]
    assert c.principles[0].text == (
        "Let legitimate overseers stop, adjust or retrain you.\n\n"
        "This holds even when you disagree.\n\n- say so openly\n- then comply"
    )
    assert c.principles[1].text == "never copy your own weights or credentials anywhere."


def test_a_bold_line_alone_acts_as_the_title_of_the_text_below_it() -> None:
    c = parse(
        """\
        # Spec
        ## Care
        **Privacy**

        Keep what people tell you to yourself.

        **Dignity**

        Treat everyone with respect, including people who are not in the conversation.
        """
    )
    assert rows(c) == [("care/privacy", "Care", "Privacy"), ("care/dignity", "Care", "Dignity")]
    assert c.get("care/privacy").text == "Keep what people tell you to yourself."


def test_bold_led_paragraphs_without_any_heading_are_principles() -> None:
    c = parse(
        """\
        **Be truthful.** Say only what is true.

        **Be kind.** Care about the people you talk to.
        """
    )
    assert rows(c) == [
        ("general/be-truthful", "General", "Be truthful"),
        ("general/be-kind", "General", "Be kind"),
    ]


def test_one_bold_phrase_inside_a_heading_principle_does_not_split_it() -> None:
    c = parse(
        """\
        # Spec
        ## Care
        ### Privacy
        Keep what people tell you to yourself, and ask before sharing anything they told you in confidence.

        **Why.** Trust.
        """
    )
    assert rows(c) == [("care/privacy", "Care", "Privacy")]


def test_title_from_first_sentence_is_shortened_to_eight_words() -> None:
    c = parse("- One two three four five six seven eight nine ten. Reason here.\n")
    assert c.principles[0].title == "One two three four five six seven eight"


def test_heading_numbering_and_markup_do_not_leak_into_titles() -> None:
    c = parse(
        """\
        # Spec
        ## 1. Honesty
        ### 1.2 Do **not** deceive
        Text one. Reason one.
        ### Principle 3: Be `calibrated`
        Text two. Reason two.
        """
    )
    assert rows(c) == [
        ("honesty/do-not-deceive", "Honesty", "Do not deceive"),
        ("honesty/be-calibrated", "Honesty", "Be calibrated"),
    ]


def test_windows_line_endings_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "crlf.md"
    path.write_bytes(b"\xef\xbb\xbf# T\r\n\r\n## S\r\n\r\n- Be good. Goodness helps.\r\n")
    c = load_constitution(path)
    assert rows(c) == [("s/be-good", "S", "Be good")]
    assert c.principles[0].text == "Be good. Goodness helps."


# --- ids ------------------------------------------------------------------------------------------------

BASE = """\
# Spec
## Honesty
### Do not deceive
Do not lie. Lies erode trust.
### Calibrate
State uncertainty. Overconfidence misleads.
## Safety
### Accept shutdown
Let them stop you. Oversight catches errors.
### Stay in scope
Take only what you need. Power is hard to oversee.
"""


def test_ids_do_not_depend_on_other_principles_text_position_or_presence() -> None:
    before = ids(parse(BASE))
    edited = BASE.replace("Do not lie. Lies erode trust.", "Never lie, ever. Completely rewritten reason.")
    inserted = BASE.replace("## Safety\n", "## Safety\n### A brand new principle\nNew. Reason.\n")
    deceive = "### Do not deceive\nDo not lie. Lies erode trust.\n"
    calibrate = "### Calibrate\nState uncertainty. Overconfidence misleads.\n"
    reordered = BASE.replace(deceive + calibrate, calibrate + deceive)
    removed = BASE.replace(calibrate, "")
    assert before == {
        "Do not deceive": "honesty/do-not-deceive",
        "Calibrate": "honesty/calibrate",
        "Accept shutdown": "safety/accept-shutdown",
        "Stay in scope": "safety/stay-in-scope",
    }
    for variant in (edited, inserted, reordered, removed):
        assert variant != BASE
        after = ids(parse(variant))
        for title, principle_id in before.items():
            if title in after:
                assert after[title] == principle_id
    assert ids(parse(inserted))["A brand new principle"] == "safety/a-brand-new-principle"


def test_list_item_ids_survive_reordering_and_insertion() -> None:
    text = "## Rules\n\n- **Be honest.** Reason a.\n- **Be kind.** Reason b.\n- **Be safe.** Reason c.\n"
    before = ids(parse(text))
    shuffled = (
        "## Rules\n\n- **New one.** Reason n.\n- **Be safe.** Reason c.\n- **Be honest.** Changed text.\n"
    )
    after = ids(parse(shuffled))
    assert after["Be honest"] == before["Be honest"] == "rules/be-honest"
    assert after["Be safe"] == before["Be safe"] == "rules/be-safe"


def test_colliding_ids_get_numeric_suffixes_in_document_order() -> None:
    c = parse("## Rules\n\n- **Be careful.** One.\n- **Be careful.** Two.\n- **Be careful.** Three.\n")
    assert [p.id for p in c.principles] == ["rules/be-careful", "rules/be-careful-2", "rules/be-careful-3"]
    assert [p.text.split()[-1] for p in c.principles] == ["One.", "Two.", "Three."]


def test_explicit_ids_are_used_verbatim_and_survive_renaming_and_moving() -> None:
    text = "# Spec\n## Honesty\n### Do not deceive {#no-deception}\nDo not lie. Reason.\n"
    renamed = "# Spec\n## Candour\n### Never mislead anyone {#no-deception}\nDo not lie. Reason.\n"
    assert parse(text).principles[0].id == "no-deception"
    assert parse(renamed).principles[0].id == "no-deception"
    assert parse(text).principles[0].title == "Do not deceive"
    item = parse("## Rules\n\n- **Be honest.** {#rules/honest} Reason a.\n")
    assert item.principles[0].id == "rules/honest"
    assert "{#" not in item.principles[0].text


def test_derived_id_never_takes_an_explicit_id() -> None:
    c = parse("## Rules\n### Be honest\nA. B.\n### Something else {#rules/be-honest}\nC. D.\n")
    assert [p.id for p in c.principles] == ["rules/be-honest-2", "rules/be-honest"]


def test_duplicate_explicit_ids_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "dupes.md"
    path.write_text("# Spec\n## S\n### A {#same}\nA. B.\n### B {#same}\nC. D.\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_constitution(path)
    assert str(caught.value).startswith(f"{path}: line 5: ")
    assert "same" in str(caught.value)
    assert "line 3" in str(caught.value)


# --- errors ---------------------------------------------------------------------------------------------


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.md"
    with pytest.raises(UserError, match=re.escape(str(path))):
        load_constitution(path)


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=re.escape(str(tmp_path))):
        load_constitution(tmp_path)


@pytest.mark.parametrize("content", ["", "   \n\n  \n"])
def test_empty_file_names_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.md"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=re.escape(f"{path}: principles: ") + ".*empty"):
        load_constitution(path)


@pytest.mark.parametrize(
    "content",
    [
        "# Title\n## Section\n### Heading with nothing\n",
        "---\ntitle: x\n---\n<!-- only a comment -->\n",
        "```\n- not a list\n```\n",
    ],
)
def test_no_principles_names_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "hollow.md"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=re.escape(f"{path}: principles: no principles found")):
        load_constitution(path)


def test_non_utf8_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes("# Spec\n\n- Caf\u00e9 rules. Reason.\n".encode("latin-1"))
    with pytest.raises(UserError, match=re.escape(f"{path}: line 3: ") + ".*UTF-8"):
        load_constitution(path)


def test_unknown_principle_id_is_a_user_error_with_suggestions() -> None:
    c = load_constitution(FIXTURES / "headings.md")
    with pytest.raises(UserError, match="did you mean honesty/do-not-deceive"):
        c.get("honesty/do-not-decieve")


# --- the constitution object -------------------------------------------------------------------------------


def test_sha256_is_of_the_raw_file_bytes(tmp_path: Path) -> None:
    raw = b"# T\n## S\n- Be good. Goodness helps.\n"
    path = tmp_path / "c.md"
    path.write_bytes(raw)
    assert load_constitution(path).sha256 == hashlib.sha256(raw).hexdigest()
    assert parse_constitution(raw.decode()).sha256 == hashlib.sha256(raw).hexdigest()
    assert load_constitution(path).path == path


def test_sections_and_by_section_keep_document_order() -> None:
    c = parse(BASE)
    assert c.sections() == ["Honesty", "Safety"]
    grouped = c.by_section()
    assert list(grouped) == ["Honesty", "Safety"]
    assert [p.title for p in grouped["Honesty"]] == ["Do not deceive", "Calibrate"]


def test_principles_are_frozen() -> None:
    principle = parse(BASE).principles[0]
    with pytest.raises(AttributeError):
        principle.text = "changed"  # type: ignore[misc]


def _principle(section: str, words: int, n: int) -> Principle:
    return Principle(id=f"{section}/{n}", section=section, title="t", text=" ".join(["w"] * (words - 1)))


def test_chunks_keep_sections_together_when_they_fit() -> None:
    a = [_principle("a", 30, i) for i in range(3)]  # 90 words
    b = [_principle("b", 30, i) for i in range(2)]  # 60 words
    c = [_principle("c", 10, i) for i in range(1)]  # 10 words
    constitution = Constitution(path=None, title="T", principles=(*a, *b, *c), sha256="")
    # a alone (90), then b + c (70): b is not split even though 10 of its words would fit after a
    assert constitution.chunks(100) == [a, [*b, *c]]


def test_chunks_split_long_sections_and_isolate_huge_principles() -> None:
    huge = _principle("a", 500, 9)
    a = [_principle("a", 40, 0), _principle("a", 40, 1), huge, _principle("a", 40, 2)]
    constitution = Constitution(path=None, title="T", principles=tuple(a), sha256="")
    assert constitution.chunks(100) == [a[:2], [huge], a[3:]]
    with pytest.raises(ValueError):
        constitution.chunks(0)


# --- the shipped example and scale ------------------------------------------------------------------------


def test_packaged_example_is_a_complete_constitution() -> None:
    path = example_constitution_path()
    assert path.name == "example.md" and path.is_file()
    c = load_constitution(path)
    assert 15 <= len(c.principles) <= 30
    assert len(c.sections()) >= 5
    assert len({p.id for p in c.principles}) == len(c.principles)
    for principle in c.principles:
        sentences = re.findall(r"[.!?](?:\s|$)", principle.text)
        assert len(sentences) >= 2, principle.id
        assert len(principle.title.split()) <= 10, principle.id


def _long_constitution(sections: int = 40, per_section: int = 12) -> tuple[str, int]:
    """A generated constitution of about 30k words, with one principle far over the chunk budget."""
    parts = ["# Long Spec\n\nPreface prose.\n"]
    count = 0
    for s in range(sections):
        parts.append(f"## Section {s} topic\n\nIntro to section {s}.\n")
        for p in range(per_section):
            words = 2500 if (s, p) == (7, 3) else 55
            body = " ".join(f"word{i}" for i in range(words))
            parts.append(
                f"### Principle {p} of section {s}\n\nThe assistant acts. {body}. Because reasons.\n"
            )
            count += 1
    return "\n".join(parts), count


def test_thirty_thousand_word_constitution_parses_fast_and_chunks_cover_everything() -> None:
    text, count = _long_constitution()
    assert len(text.split()) >= 30_000
    start = time.perf_counter()
    c = parse_constitution(text, source="long.md")
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert len(c.principles) == count
    assert len({p.id for p in c.principles}) == count

    chunks = c.chunks(max_words=2000)
    flat = [p for chunk in chunks for p in chunk]
    assert flat == list(c.principles)  # every principle exactly once, in order
    for chunk in chunks:
        words = sum(p.word_count for p in chunk)
        assert words <= 2000 or (len(chunk) == 1 and chunk[0].word_count > 2000)
    assert any(len(chunk) == 1 and chunk[0].word_count > 2000 for chunk in chunks)
    # sections that fit in a chunk are never split across chunks
    for section, members in c.by_section().items():
        if sum(p.word_count for p in members) <= 2000:
            assert sum(1 for chunk in chunks if any(p.section == section for p in chunk)) == 1, section
