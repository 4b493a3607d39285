"""Tests for reprsim.corpus: loaders, Unicode clean-up, the tokenizer, selections and the content hash."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reprsim.corpus import Corpus
from reprsim.corpus import builtin as builtin_module
from reprsim.corpus.tokenize import split_sentences, tokenize_document, tokenize_sentence, tokenize_token


def reference_hash(sentences: list[list[str]]) -> str:
    """The documented hash: sha256 of the compact UTF-8 JSON of the sentences."""
    text = json.dumps(sentences, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


# --- plain text ------------------------------------------------------------------------------------------
def test_plain_text_sentences_lengths_and_hash(tmp_path):
    path = write(tmp_path, "c.txt", "The cat sat .\nA dog  barked\tloudly\n")
    corpus = Corpus.from_text(path)
    expected = [["The", "cat", "sat", "."], ["A", "dog", "barked", "loudly"]]
    assert corpus.sentences == expected
    assert corpus.sentence_lengths == [4, 4]
    assert corpus.n_words == 8
    assert len(corpus) == 2
    assert corpus.hash == reference_hash(expected)
    assert corpus.name == "c"
    assert corpus.source == str(path)


def test_hash_depends_on_content_not_on_name_or_word_boundaries(tmp_path):
    a = Corpus([["a", "b"]], name="x")
    assert a.hash == Corpus([["a", "b"]], name="y", source="elsewhere").hash
    assert a.hash != Corpus([["ab"]]).hash
    assert a.hash != Corpus([["a"], ["b"]]).hash
    assert a.hash != Corpus([["a", "c"]]).hash


def test_crlf_line_endings_are_accepted(tmp_path):
    corpus = Corpus.from_text(write(tmp_path, "c.txt", b"one two\r\nthree\r\n"))
    assert corpus.sentences == [["one", "two"], ["three"]]


def test_empty_line_is_an_error_naming_file_and_line(tmp_path):
    path = write(tmp_path, "gaps.txt", "first line\n   \nthird\n")
    with pytest.raises(ValueError, match=r"gaps\.txt: line 2 is empty"):
        Corpus.from_text(path)
    assert Corpus.from_text(path, skip_empty=True).sentences == [["first", "line"], ["third"]]


def test_blank_lines_at_the_end_of_the_file_are_not_sentences(tmp_path):
    path = write(tmp_path, "tail.txt", "first line\nsecond\n\n  \r\n\n")
    assert Corpus.from_text(path).sentences == [["first", "line"], ["second"]]


def test_old_mac_line_endings_are_an_error_not_one_long_sentence(tmp_path):
    path = write(tmp_path, "mac.txt", b"one two\rthree four\r")
    with pytest.raises(ValueError, match=r"mac\.txt: line 1 has a carriage return inside it.*\(CR\) line endings"):
        Corpus.from_text(path)


def test_line_of_only_invisible_characters_counts_as_empty(tmp_path):
    path = write(tmp_path, "zw.txt", "a b\n\u200b \u00ad\n")
    with pytest.raises(ValueError, match="line 2 is empty"):
        Corpus.from_text(path)


def test_empty_file_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"empty: .*nothing\.txt"):
        Corpus.from_text(write(tmp_path, "nothing.txt", ""))
    with pytest.raises(ValueError, match="empty"):
        Corpus.from_text(write(tmp_path, "blank.txt", "\n\n  \n"))
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        Corpus.from_text(tmp_path / "missing.txt")


def test_non_utf8_bytes_name_file_line_and_byte_offset(tmp_path):
    path = write(tmp_path, "latin1.txt", b"good line\ncaf\xe9 au lait\n")
    # byte offset: "good line\n" is 10 bytes, then "caf" is 3 more.
    with pytest.raises(ValueError, match=r"latin1\.txt: line 2: invalid UTF-8 byte 0xe9 at byte offset 13"):
        Corpus.from_text(path)


def test_utf8_bom_is_ignored(tmp_path):
    corpus = Corpus.from_text(write(tmp_path, "bom.txt", b"\xef\xbb\xbfhello world\n"))
    assert corpus.sentences == [["hello", "world"]]


# --- Unicode --------------------------------------------------------------------------------------------
def test_nfc_normalisation_composes_accents():
    corpus = Corpus([["cafe\u0301"]])
    assert corpus.sentences == [["caf\u00e9"]]
    assert len(corpus.sentences[0][0]) == 4


def test_zero_width_and_control_characters_are_dropped_and_empty_words_removed(tmp_path):
    line = "foo\u200bbar \u200d \ufeffbaz soft\u00adware bell\x07 \u200b\n"
    corpus = Corpus.from_text(write(tmp_path, "zw.txt", line))
    assert corpus.sentences == [["foobar", "baz", "software", "bell"]]


def test_spacing_diacritic_stays_one_word_and_nbsp_splits(tmp_path):
    # NFKC would turn U+00B4 into space + combining accent and change the word count; NFC must not.
    corpus = Corpus.from_text(write(tmp_path, "d.txt", "a \u00b4 b\u00a0c\n"))
    assert corpus.sentences == [["a", "\u00b4", "b", "c"]]
    assert unicodedata.normalize("NFKC", "\u00b4") != "\u00b4"  # the trap this guards against is real


def test_constructor_validates_sentences():
    with pytest.raises(ValueError, match="non-empty"):
        Corpus([])
    with pytest.raises(ValueError, match="sentence 1 must be a list"):
        Corpus([["a"], "not a list"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="sentence 1 has no words"):
        Corpus([["a"], ["\u200b"]])


# --- CoNLL-U --------------------------------------------------------------------------------------------
CONLLU = """# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\t_\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\t_\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\t_\t_\t0\troot\t_\t_
3.1\tgone\tgo\tVERB\t_\t_\t_\t_\t0:root\t_
4\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_

# sent_id = 2
1\tCafe\u0301\t_\t_\t_\t_\t0\troot\t_\t_
2\t!\t!\tPUNCT\t_\t_\t1\tpunct\t_\t_
"""


def test_conllu_reads_forms_skipping_multiword_tokens_and_empty_nodes(tmp_path):
    corpus = Corpus.from_conllu(write(tmp_path, "s.conllu", CONLLU))
    assert corpus.sentences == [["Do", "n't", "go", "."], ["Caf\u00e9", "!"]]
    assert corpus.name == "s"


def test_conllu_without_final_blank_line_and_bad_lines(tmp_path):
    corpus = Corpus.from_conllu(write(tmp_path, "a.conllu", "1\tHi\t_\n2\tthere\t_"))
    assert corpus.sentences == [["Hi", "there"]]
    with pytest.raises(ValueError, match=r"b\.conllu: line 2: not a CoNLL-U token line"):
        Corpus.from_conllu(write(tmp_path, "b.conllu", "1\tHi\t_\nbroken line\n"))
    with pytest.raises(ValueError, match=r"line 1: CoNLL-U ID 'x'"):
        Corpus.from_conllu(write(tmp_path, "c.conllu", "x\tHi\t_\n"))
    with pytest.raises(ValueError, match="no sentences"):
        Corpus.from_conllu(write(tmp_path, "d.conllu", "# only a comment\n"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # a token whose FORM is empty or only invisible characters: dropping it would shift the later words
        ("1\tHi\t_\n2\t\t_\n3\tthere\t_\n", r"e\.conllu: line 2: token 2 has FORM '', which is empty"),
        ("1\tHi\t_\n2\t\u200b\t_\n3\tthere\t_\n", r"line 2: token 2 has FORM '\\u200b', which is empty"),
        # IDs that only look like a multiword range or an empty node were skipped before
        ("1\tHi\t_\n-1\tthere\t_\n", r"line 2: CoNLL-U ID '-1' is not a word index"),
        ("1\tHi\t_\n2-\tthere\t_\n", r"line 2: CoNLL-U ID '2-' is not a word index"),
        ("1\tHi\t_\n.5\tthere\t_\n", r"line 2: CoNLL-U ID '.5' is not a word index"),
        ("\u0661\tHi\t_\n", r"line 1: CoNLL-U ID '\u0661' is not a word index"),  # an Arabic-Indic digit
    ],
)
def test_conllu_tokens_that_would_be_lost_silently_are_errors(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        Corpus.from_conllu(write(tmp_path, "e.conllu", content))
    # the well-formed kinds of skipped line still read as before
    fine = "1-2\tdon't\t_\n1\tdo\t_\n2\tn't\t_\n2.1\tgo\t_\n3\tgo\u200b\t_\n"  # a FORM that keeps a word
    assert Corpus.from_conllu(write(tmp_path, "f.conllu", fine)).sentences == [["do", "n't", "go"]]


def test_load_dispatches_on_suffix(tmp_path):
    conllu = write(tmp_path, "x.conll", CONLLU)
    text = write(tmp_path, "x.txt", "a b\nc\n")
    assert Corpus.load(conllu).sentences == Corpus.from_conllu(conllu).sentences
    assert Corpus.load(text).sentences == [["a", "b"], ["c"]]
    assert Corpus.load(text, n=1).sentences == [["a", "b"]]


# --- selections -----------------------------------------------------------------------------------------
def test_head_and_drop_longer_than(tmp_path):
    lines = ["w " * k for k in (3, 1, 5, 2, 4)]
    path = write(tmp_path, "n.txt", "\n".join(lines) + "\n")
    corpus = Corpus.from_text(path)
    assert corpus.head(2).sentence_lengths == [3, 1]
    assert corpus.drop_longer_than(3).sentence_lengths == [3, 1, 2]
    # loader kwargs: long sentences are dropped first, then the first n of the rest are kept
    assert Corpus.from_text(path, n=2, max_words=2).sentence_lengths == [1, 2]
    assert corpus.head(2).hash == reference_hash([["w"] * 3, ["w"]])
    with pytest.raises(ValueError, match="fewer than n=9"):
        corpus.head(9)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        corpus.head(0)
    with pytest.raises(ValueError, match="max_words must be a positive integer"):
        corpus.drop_longer_than(0)
    with pytest.raises(ValueError, match="every sentence is longer than 1"):
        Corpus([["a", "b"]]).drop_longer_than(1)


# --- tokenizer ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"The falls," she said.', ['"', "The", "falls", ",", '"', "she", "said", "."]),
        ("We don't know, they're sure.", ["We", "do", "n't", "know", ",", "they", "'re", "sure", "."]),
        ("Sydney's west at 4:00pm (AEDT).", ["Sydney", "'s", "west", "at", "4:00pm", "(", "AEDT", ")", "."]),
        ("About $45 for 1,000 south-west homes", ["About", "$", "45", "for", "1,000", "south-west", "homes"]),
        (
            "the boys' toys in the '90s ... ok?",
            ["the", "boys", "'", "toys", "in", "the", "'90s", "...", "ok", "?"],
        ),
        ("O'Connor said it was 'up'.", ["O'Connor", "said", "it", "was", "'", "up", "'", "."]),
        ("[sic] can't", ["[", "sic", "]", "ca", "n't"]),
    ],
)
def test_tokenize_sentence_examples(raw, expected):
    assert tokenize_sentence(raw.split()) == expected


def test_sentence_splitting_respects_abbreviations_and_lowercase_continuations():
    doc = 'Dr. Smith met U.S. troops. "They left," he said. George W. Bush spoke at 5 p.m. today. 20 died.'
    sentences = [" ".join(words) for words in split_sentences(doc)]
    assert sentences == [
        "Dr. Smith met U.S. troops.",
        '"They left," he said.',
        "George W. Bush spoke at 5 p.m. today.",
        "20 died.",
    ]
    assert tokenize_document("It rained. Then it stopped!") == [
        ["It", "rained", "."],
        ["Then", "it", "stopped", "!"],
    ]


@given(st.text(alphabet=st.characters(blacklist_categories=["Zs", "Zl", "Zp", "Cc", "Cs"]), min_size=1))
def test_tokenize_token_loses_and_adds_no_characters(token):
    for final in (False, True):
        pieces = tokenize_token(token, sentence_final=final)
        assert "".join(pieces) == token
        assert all(pieces)


@given(
    st.lists(
        st.sampled_from(["Mr.", "it", "rained.", "Then", '"Yes,"', "U.S.", "5", "ok?", "(a)"]), max_size=30
    )
)
def test_sentence_splitting_keeps_every_raw_token_in_order(tokens):
    doc = " ".join(tokens)
    assert [t for sentence in split_sentences(doc) for t in sentence] == doc.split()
    assert all(split_sentences(doc))


# --- built-in corpus ------------------------------------------------------------------------------------
def test_builtin_corpus_is_real_prose_and_deterministic():
    corpus = Corpus.builtin()
    assert len(corpus) >= 2000
    assert corpus.n_words > 50_000
    assert corpus.name == "lee-background"
    assert corpus.source.startswith("gensim ")
    assert (
        corpus.sentences[0]
        == (
            "Hundreds of people have been forced to vacate their homes in the Southern Highlands of New "
            "South Wales as strong winds today pushed a huge bushfire towards the town of Hill Top ."
        ).split()
    )
    assert corpus.sentences[1][:4] == ["A", "new", "blaze", "near"]
    assert corpus.hash == Corpus.builtin().hash
    assert corpus.hash == reference_hash(corpus.sentences)
    small = Corpus.builtin(n=10, max_words=20)
    assert len(small) == 10 and max(small.sentence_lengths) <= 20
    assert Corpus.load("builtin", n=5).sentences == corpus.sentences[:5]


def test_builtin_does_not_import_gensim():
    code = (
        "import sys; from reprsim.corpus import Corpus; c = Corpus.builtin(n=3); "
        "assert 'gensim' not in sys.modules, 'gensim was imported'; print(len(c))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_builtin_without_gensim_says_what_to_install(monkeypatch):
    monkeypatch.setattr(builtin_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install gensim==4\.4\.0"):
        Corpus.builtin()


def test_repr_is_short():
    text = repr(Corpus([["a", "b"], ["c"]], name="tiny"))
    assert "tiny" in text and "2 sentences" in text and "3 words" in text and len(text) < 200


def test_a_folder_given_as_the_corpus_is_named_as_such(tmp_path):
    for load in (Corpus.from_text, Corpus.from_conllu):
        with pytest.raises(ValueError, match="corpus path is a folder, not a file"):
            load(tmp_path)
