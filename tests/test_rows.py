"""Text-level rows (`extract(rows=...)`, ``--rows``): one row per sentence pooled from the model's own tokens.

The stored rows of tiny models of six families must equal a by-hand pooling of the model's hidden states on
each sentence alone (positions picked from word_ids here, independently of the extraction code); windows of a
long sentence must pool each token once; entries are keyed by rows while word-level keys stay as they were;
pooled and word-level entries cannot be compared; the study YAML and the command line take the option.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import transformers as tr

from reprsim.cli import build_parser, main
from reprsim.comparison import compare
from reprsim.corpus import Corpus
from reprsim.extraction import ROW_RULES, AdapterOutput, TransformerAdapter, extract
from reprsim.extraction.rows import pool_word_rows
from reprsim.store import ActivationStore
from reprsim.study import StudyConfigError, parse_study
from test_extraction_models import SENTENCES, build_family, reference_run, reference_tokens

TEXT_RULES = [rule for rule in ROW_RULES if rule != "word"]
# family: (words 2..n get a " " prefix, a BOS id is prepended, first-token takes position 0 as the CLS token)
ROW_FAMILIES: dict[str, tuple[bool, bool, bool]] = {
    "bert": (False, False, True),
    "roberta": (True, False, True),  # <s> is RoBERTa's cls_token and opens every sequence
    "xlnet": (False, False, False),  # <cls> comes last: the first word's token is taken
    "t5": (False, False, False),  # no CLS token
    "gpt2": (True, True, False),  # a decoder: the prepended BOS is never taken
    "llama": (False, True, False),  # a decoder that pads on the left
}


@pytest.fixture(scope="module")
def row_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each tiny model of ROW_FAMILIES saved as a local model folder."""
    folders = {}
    for family in ROW_FAMILIES:
        model, tok = build_family(family, tmp_path_factory.mktemp(f"{family}-vocab"))
        folder = tmp_path_factory.mktemp("models") / f"tiny-{family}"
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        folders[family] = folder
    return folders


def hand_pooled(hidden: Any, word_ids: Sequence[int | None], rule: str, cls_first: bool) -> np.ndarray:
    """Plain loop: the positions of tokens that belong to a word, then the rule (CLS at position 0 when asked)."""
    positions = [t for t, w in enumerate(word_ids) if w is not None]
    vectors = hidden[0].double().numpy()
    if rule == "last-token":
        return vectors[positions[-1]]
    if rule == "first-token":
        return vectors[0] if cls_first else vectors[positions[0]]
    return vectors[positions].mean(0)


@pytest.mark.parametrize("family", list(ROW_FAMILIES))
def test_text_rows_equal_a_hand_pooling_of_the_models_hidden_states(
    family: str, row_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = row_models[family]
    prefix, bos, cls_first = ROW_FAMILIES[family]
    model = (
        tr.AutoModelForTextEncoding.from_pretrained(folder) if family == "t5" else tr.AutoModel.from_pretrained(folder)
    ).eval()
    tok = tr.AutoTokenizer.from_pretrained(folder)
    references = [reference_tokens(tok, words, prefix, bos) for words in SENTENCES]
    outputs = [reference_run(model, ids, attention=False) for ids, _ in references]
    store = ActivationStore(tmp_path / "store")
    for rule in TEXT_RULES:
        (entry,) = extract(str(folder), Corpus(SENTENCES), store, rows=rule, batch_size=3, device="cpu", progress=False)
        assert entry.rows == rule and entry.manifest["rows"] == rule
        assert entry.sentence_lengths == [1] * len(SENTENCES) and entry.n_words == len(SENTENCES)
        assert not entry.has_attention
        for layer in entry.layer_ids:
            want = np.stack([
                hand_pooled(out.hidden_states[layer], word_ids, rule, cls_first)
                for (_, word_ids), out in zip(references, outputs, strict=True)
            ])
            got = entry.read_rows(layer, 0, len(SENTENCES))
            np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5, err_msg=f"{family} {rule} layer {layer}")


def test_first_token_takes_the_cls_token_only_of_encoders_that_open_with_one(tmp_path: Path) -> None:
    for family, (_, _, cls_first) in ROW_FAMILIES.items():
        (tmp_path / family).mkdir()
        model, tok = build_family(family, tmp_path / family)
        adapter = TransformerAdapter(model, tok)
        assert (adapter.cls_token_id is not None) == cls_first, family
        if cls_first:
            assert adapter.cls_token_id == tok.cls_token_id


def test_windows_of_a_long_sentence_pool_every_token_once(tmp_path: Path) -> None:
    """Windowed text rows equal the word rows of the same windows pooled by hand, token counts as weights."""
    model, tok = build_family("llama", tmp_path)
    long_sentence = [w for _ in range(3) for w in ("the", "dog", "sat", "on", "mat", "happened", "!")]
    corpus = Corpus([long_sentence, ["the", "cat", "sat"], long_sentence[:7]])
    _, word_ids = zip(*(reference_tokens(tok, words, False, True) for words in corpus.sentences), strict=True)

    def windowed(**options: Any) -> TransformerAdapter:
        return TransformerAdapter(model, tok, long_sentences="window", max_tokens=9, identity={"m": "llama"}, **options)

    store = ActivationStore(tmp_path / "store")
    word_means = extract(windowed(subword="mean"), corpus, store, attention=False, names=["mean"], progress=False)[0]
    word_lasts = extract(windowed(subword="last"), corpus, store, attention=False, names=["last"], progress=False)[0]
    word_firsts = extract(windowed(subword="first"), corpus, store, attention=False, names=["first"], progress=False)[0]
    texts = {
        rule: extract(windowed(), corpus, store, rows=rule, names=[rule + "-text"], progress=False)[0]
        for rule in TEXT_RULES
    }
    for layer in word_means.layer_ids:
        offset = 0
        for s, words in enumerate(corpus.sentences):
            counts = np.array([sum(1 for w in word_ids[s] if w == i) for i in range(len(words))], dtype=np.float64)
            means = word_means.read_rows(layer, offset, offset + len(words)).astype(np.float64)
            want = {
                "mean": (counts[:, None] * means).sum(0) / counts.sum(),
                "last-token": word_lasts.read_rows(layer, offset + len(words) - 1, offset + len(words))[0],
                "first-token": word_firsts.read_rows(layer, offset, offset + 1)[0],
            }
            for rule, entry in texts.items():
                got = entry.read_rows(layer, s, s + 1)[0]
                np.testing.assert_allclose(got, want[rule], atol=2e-5, rtol=1e-5, err_msg=f"{rule} sentence {s}")
            offset += len(words)


class FixedAdapter:
    """A deterministic adapter: a word's vector is len(word) + layer in every neuron."""

    layer_widths = (3, 3)
    attention_heads = (0, 1)

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "fixed-test-adapter"}

    def encode(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], attention: bool) -> AdapterOutput:
        hidden = [
            np.stack([np.full(3, float(len(w)) + layer) for s in sentences for w in s]).astype(np.float32)
            for layer in layers
        ]
        maps = None
        if attention:
            maps = [
                [
                    np.zeros((0, len(s), len(s)), np.float32)
                    if layer == 0
                    else np.full((1, len(s), len(s)), 1 / len(s), np.float32)
                    for s in sentences
                ]
                for layer in layers
            ]
        return AdapterOutput(hidden=hidden, attention=maps)


KEY_CORPUS = [["a", "bb", "ccc"], ["dddd", "e"]]


def test_word_level_keys_are_those_of_the_code_before_rows(tmp_path: Path) -> None:
    """Keys computed with the code of commit d437403 (before rows existed) for this adapter and corpus."""
    store = ActivationStore(tmp_path / "store")
    (full,) = extract(FixedAdapter(), Corpus(KEY_CORPUS), store, progress=False)
    (one_layer,) = extract(FixedAdapter(), Corpus(KEY_CORPUS), store, attention=False, layers=[1], progress=False)
    (explicit,) = extract(FixedAdapter(), Corpus(KEY_CORPUS), store, rows="word", progress=False)
    assert full.key == explicit.key == "FixedAdapter-4ccc9605c9350333a996"
    assert one_layer.key == "FixedAdapter-28992f63176e6e85dc80"
    assert "rows" not in full.manifest and "rows" not in full.manifest["fingerprint"]
    assert full.rows == "word" and full.has_attention


def test_entries_are_keyed_by_rows_and_an_adapter_without_tokens_pools_its_words(tmp_path: Path) -> None:
    store = ActivationStore(tmp_path / "store")
    corpus = Corpus(KEY_CORPUS)
    (words,) = extract(FixedAdapter(), corpus, store, attention=False, progress=False)
    pooled = {rule: extract(FixedAdapter(), corpus, store, rows=rule, progress=False)[0] for rule in TEXT_RULES}
    keys = [words.key, *(entry.key for entry in pooled.values())]
    assert len(set(keys)) == len(keys)
    for rule, entry in pooled.items():
        assert entry.manifest["fingerprint"]["rows"] == rule
        for layer in entry.layer_ids:
            want = pool_word_rows(words.read_rows(layer, 0, words.n_words), corpus.sentence_lengths, rule)
            np.testing.assert_array_equal(entry.read_rows(layer, 0, 2), want)
    np.testing.assert_array_equal(pooled["mean"].read_rows(1, 0, 2)[:, 0], [3.0, 3.5])  # (1+2+3)/3+1, (4+1)/2+1
    np.testing.assert_array_equal(pooled["last-token"].read_rows(0, 0, 2)[:, 0], [3.0, 1.0])
    np.testing.assert_array_equal(pooled["first-token"].read_rows(0, 0, 2)[:, 0], [1.0, 4.0])
    assert extract(FixedAdapter(), corpus, store, rows="mean", progress=False)[0].key == pooled["mean"].key  # reused


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rows": "mean", "attention": True}, r"rows='mean' \(--rows mean\) stores one row per sentence and no"),
        ({"rows": "last-token", "causal_attention": True}, r"causal_attention=True \(--causal-attention\) was asked"),
        ({"rows": "sentence"}, r"rows must be one of word, last-token, mean, first-token \(--rows\); got 'sentence'"),
    ],
)
def test_bad_rows_options_are_clear_errors(options: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        extract(FixedAdapter(), Corpus(KEY_CORPUS), tmp_path / "store", progress=False, **options)


def test_comparing_entries_of_different_rows_names_both_entries(tmp_path: Path) -> None:
    store = ActivationStore(tmp_path / "store")
    corpus = Corpus([["a", "bb", "ccc"], ["dddd", "e"]] * 8)
    (words,) = extract(FixedAdapter(), corpus, store, attention=False, names=["per-word"], progress=False)
    (mean,) = extract(FixedAdapter(), corpus, store, rows="mean", names=["per-text"], progress=False)
    (last,) = extract(FixedAdapter(), corpus, store, rows="last-token", names=["last-text"], progress=False)
    for a, b in ((words, mean), (mean, last)):
        with pytest.raises(ValueError) as caught:
            compare(store, measures=["linear_cka"], models=[a.key, b.key], progress=False)
        text = str(caught.value)
        for entry in (a, b):
            assert repr(entry.name) in text and entry.key in text and repr(entry.rows) in text
    table = compare(store, measures=["linear_cka"], models=[mean.key], progress=False)
    assert set(table.frame["n_rows"]) == {len(corpus)}


def _study(extraction: dict[str, Any], tmp_path: Path) -> Any:
    raw = {"models": [{"name": "m", "model": "minilm"}], "extraction": extraction, "output": {"dir": "out"}}
    return parse_study(raw, tmp_path)


def test_study_yaml_takes_rows_and_validates_it(tmp_path: Path) -> None:
    assert _study({}, tmp_path).extraction.rows == "word"
    assert _study({}, tmp_path).extraction.attention is True
    pooled = _study({"rows": "last-token"}, tmp_path).extraction
    assert (pooled.rows, pooled.attention) == ("last-token", False)
    with pytest.raises(StudyConfigError, match=r"`extraction.rows`: 'tokens' is not allowed; choose one of"):
        _study({"rows": "tokens"}, tmp_path)
    with pytest.raises(StudyConfigError, match=r"`extraction.attention`: must be false with rows: mean"):
        _study({"rows": "mean", "attention": True}, tmp_path)
    with pytest.raises(StudyConfigError, match=r"`extraction.causal_attention`: must be false with rows: mean"):
        _study({"rows": "mean", "causal_attention": True}, tmp_path)


def test_command_line_rows(row_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    rows_option = next(a for a in subparsers.choices["extract"]._actions if a.dest == "rows")
    assert tuple(rows_option.choices) == ROW_RULES and rows_option.default == "word"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(s) for s in SENTENCES) + "\n")
    store = tmp_path / "store"
    args = ["extract", str(row_models["bert"]), "--corpus", str(corpus), "--store", str(store), "--quiet"]
    assert main([*args, "--rows", "mean"]) == 0
    assert "4 sentences, one mean row each" in capsys.readouterr().out
    (entry,) = ActivationStore(store).entries()
    assert (entry.rows, entry.n_words, entry.has_attention) == ("mean", 4, False)
    assert main([*args, "--rows", "first-token", "--causal-attention"]) != 0
    assert "stores one row per sentence and no attention maps" in capsys.readouterr().err


class FlakyTextAdapter(TransformerAdapter):
    """A TransformerAdapter whose encode_texts fails once it has pooled `fail_at` sentences."""

    fail_at: int | None = None
    pooled = 0

    def encode_texts(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], rows: str) -> AdapterOutput:
        if self.fail_at is not None and self.pooled >= self.fail_at:
            raise RuntimeError("model failed mid-run")
        self.pooled += len(sentences)
        return super().encode_texts(sentences, layers, rows)


def test_an_interrupted_text_row_extraction_resumes_to_the_same_rows(tmp_path: Path) -> None:
    model, tok = build_family("bert", tmp_path)
    corpus = Corpus([list(SENTENCES[i % len(SENTENCES)]) for i in range(300)])
    store = ActivationStore(tmp_path / "store")
    flaky = FlakyTextAdapter(model, tok, identity={"m": "bert"})
    flaky.fail_at = 256
    with pytest.raises(RuntimeError, match="model failed mid-run"):
        extract(flaky, corpus, store, rows="mean", batch_size=64, progress=False)
    rerun = FlakyTextAdapter(model, tok, identity={"m": "bert"})
    (entry,) = extract(rerun, corpus, store, rows="mean", batch_size=64, progress=False)
    assert rerun.pooled == 300 - 256  # the first window (256 sentences) was committed before the failure
    (expected,) = extract(
        FlakyTextAdapter(model, tok, identity={"m": "bert"}), corpus, tmp_path / "ref", rows="mean", batch_size=64,
        progress=False,
    )
    assert entry.sentence_lengths == [1] * 300
    for layer in entry.layer_ids:
        np.testing.assert_array_equal(entry.read_rows(layer, 0, 300), expected.read_rows(layer, 0, 300))
