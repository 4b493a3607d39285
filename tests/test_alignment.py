"""Word alignment: pooling rules, word-level attention, windows, and tokenizer edge cases.

A fake tokenizer and a fake model pin the edge cases down exactly: the fake model's "hidden state" of a token
is (token id, position, layer, mask), so a stored word vector says which token it came from and where.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from reprsim.corpus import Corpus
from reprsim.extraction import TransformerAdapter, extract, plan_windows
from reprsim.extraction.alignment import (
    causal_mask_rows,
    drop_space_pieces,
    pool_attention,
    pooling_weights,
    word_ids_tensor,
    word_membership,
    word_vectors,
)
from reprsim.store import ActivationStore

# ---- fake tokenizer and model ------------------------------------------------------------------------
SPACE_PIECE = "▁"



class FakeEncoding:
    def __init__(self, ids: list[list[int]], word_ids: list[list[int | None]]) -> None:
        self._ids = ids
        self._word_ids = word_ids

    def __getitem__(self, key: str) -> list[list[int]]:
        assert key == "input_ids"
        return self._ids

    def word_ids(self, i: int) -> list[int | None]:
        return list(self._word_ids[i])


class FakeTokenizer:
    """Lower-case a-z words split into pieces of `piece` characters; [CLS] words [SEP].

    Words in `drop` give no token; a word starting with "+" is glued onto the previous word (its pieces carry
    the previous word's id, as a tokenizer that merges words would); a word starting with "~" gets a bare
    space piece "▁" (decoding to " ") before the pieces of the rest, as SentencePiece gives numbers; a word
    with any other character outside a-z becomes one [UNK].
    """

    pad_token_id = 0
    eos_token_id = None
    bos_token_id = None
    model_max_length = int(1e30)

    def __init__(self, piece: int = 2, drop: tuple[str, ...] = (), padding_side: str = "right") -> None:
        self.piece = piece
        self.drop = set(drop)
        self.padding_side = padding_side
        self.vocab = {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3, SPACE_PIECE: 4}

    def token_id(self, piece: str) -> int:
        return self.vocab.setdefault(piece, len(self.vocab))

    def pieces(self, word: str) -> list[int]:
        if word in self.drop:
            return []
        if word.startswith("~"):
            return [self.vocab[SPACE_PIECE]] + (self.pieces(word[1:]) if word[1:] else [])
        if not word or any(not ("a" <= c <= "z") for c in word):
            return [self.vocab["[UNK]"]]
        return [self.token_id(word[i : i + self.piece]) for i in range(0, len(word), self.piece)]

    def __call__(self, batch: Any, is_split_into_words: bool = False, **_: Any) -> FakeEncoding:
        assert is_split_into_words, "the adapter must pass pre-split words"
        all_ids, all_word_ids = [], []
        for words in batch:
            ids, wids = [1], [None]
            for w, word in enumerate(words):
                owner = w
                if word.startswith("+") and w > 0:
                    word, owner = word[1:], max(x for x in wids if x is not None)
                for token in self.pieces(word):
                    ids.append(token)
                    wids.append(owner)
            ids.append(2)
            wids.append(None)
            all_ids.append(ids)
            all_word_ids.append(wids)
        return FakeEncoding(all_ids, all_word_ids)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def batch_decode(self, sequences: list[list[int]], **_: Any) -> list[str]:
        text = {i: " " if piece == SPACE_PIECE else piece for piece, i in self.vocab.items()}
        return ["".join(text[i] for i in ids) for ids in sequences]


class FakeModel(torch.nn.Module):
    """hidden_states[l][b, t] = (input id, position, l, mask); attention[l][b, 0] = softmax over real keys of
    -|pos_i - pos_j| * (l + 1), so both depend only on real tokens and their positions."""

    def __init__(self, n_layers: int = 2, max_positions: int = 64) -> None:
        super().__init__()
        self.config = SimpleNamespace(
            num_hidden_layers=n_layers,
            hidden_size=4,
            num_attention_heads=1,
            max_position_embeddings=max_positions,
        )
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool = True,
        output_attentions: bool = False,
    ) -> SimpleNamespace:
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        pos = position_ids.float()
        hidden = tuple(
            torch.stack([input_ids.float(), pos, torch.full_like(pos, layer), attention_mask.float()], -1)
            for layer in range(self.config.num_hidden_layers + 1)
        )
        attentions = ()
        if output_attentions:
            dist = (pos[:, :, None] - pos[:, None, :]).abs()
            keys = attention_mask[:, None, :].bool()
            attentions = tuple(
                torch.softmax(torch.where(keys, -dist * (layer + 1), -torch.inf), -1)[:, None]
                for layer in range(self.config.num_hidden_layers)
            )
        return SimpleNamespace(hidden_states=hidden, attentions=attentions)


def fake_adapter(**kwargs: Any) -> TransformerAdapter:
    tok_args = {k: kwargs.pop(k) for k in ("piece", "drop", "padding_side") if k in kwargs}
    max_positions = kwargs.pop("max_positions", 64)
    return TransformerAdapter(
        FakeModel(max_positions=max_positions), FakeTokenizer(**tok_args), space_prefix=False, **kwargs
    )


def expected_tokens(tok: FakeTokenizer, words: list[str]) -> list[list[tuple[int, int]]]:
    """Per word, its (token id, position) pairs in the unpadded sentence: a plain loop over words. A bare
    space piece takes a position but is no part of the word."""
    result, position = [], 1  # [CLS] at 0
    for word in words:
        pairs = []
        for token in tok.pieces(word):
            if token != tok.vocab[SPACE_PIECE]:
                pairs.append((token, position))
            position += 1
        result.append(pairs)
    return result


SENTENCES = [
    ["unbelievably", "long", "words", "here"],  # 6, 2, 3, 2 pieces
    ["a", "b"],
    ["x", "Caps9", "yz", "abcdefghij"],  # [UNK] for Caps9, five pieces for the last word
]
# Words after a bare space piece, as SentencePiece and byte-level BPE give numbers: "▁" "cd" "ef" for "~cdef".
SPACED = [["ab", "~cdef", "~gh", "ij"], ["~abc", "d"], ["~x"]]


# ---- pooling rules -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sentences", [SENTENCES, SPACED], ids=["plain", "bare-space-pieces"])
@pytest.mark.parametrize("rule", ["last", "first", "mean"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_fake_word_vectors_pick_the_right_subword(sentences: list[list[str]], rule: str, side: str) -> None:
    adapter = fake_adapter(subword=rule, padding_side=side)
    out = adapter.encode(sentences, [0, 2], attention=False)
    rows = out.hidden[1].numpy()
    assert rows.shape == (sum(map(len, sentences)), 4)
    r = 0
    for words in sentences:
        for pairs in expected_tokens(adapter.tokenizer, words):
            ids = [p[0] for p in pairs]
            positions = [p[1] for p in pairs]
            if rule == "last":
                want = (ids[-1], positions[-1])
            elif rule == "first":
                want = (ids[0], positions[0])
            else:
                want = (sum(ids) / len(ids), sum(positions) / len(positions))
            assert rows[r, 0] == pytest.approx(want[0], abs=1e-5)
            assert rows[r, 1] == pytest.approx(want[1], abs=1e-5), "positions must not shift with padding"
            assert rows[r, 2] == 2.0 and rows[r, 3] == 1.0  # layer 2, a real token
            r += 1


def test_unknown_word_becomes_unk_vector() -> None:
    out = fake_adapter().encode([["x", "Caps9", "yz"]], [1], attention=False)
    assert out.hidden[0][1, 0].item() == 3.0  # [UNK]'s id


def test_left_and_right_padding_give_identical_batches() -> None:
    right = fake_adapter(padding_side="right").encode(SENTENCES, [0, 1, 2], attention=True)
    left = fake_adapter(padding_side="left").encode(SENTENCES, [0, 1, 2], attention=True)
    for a, b in zip(right.hidden, left.hidden, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert right.attention is not None and left.attention is not None
    for layer_a, layer_b in zip(right.attention[1:], left.attention[1:], strict=True):
        for a, b in zip(layer_a, layer_b, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_pooling_weights_by_hand() -> None:
    # tokens: [CLS] w0 w1 w1 w1 w2 [SEP] [PAD]
    wid = word_ids_tensor([[None, 0, 1, 1, 1, 2, None, None]], 8)
    last = pooling_weights(wid, 3, "last")[0].numpy()
    first = pooling_weights(wid, 3, "first")[0].numpy()
    mean = pooling_weights(wid, 3, "mean")[0].numpy()
    e = np.eye(8)
    np.testing.assert_array_equal(last, e[[1, 4, 5]])
    np.testing.assert_array_equal(first, e[[1, 2, 5]])
    np.testing.assert_allclose(mean, np.stack([e[1], (e[2] + e[3] + e[4]) / 3, e[5]]))


def test_nan_at_pad_positions_does_not_leak() -> None:
    adapter = fake_adapter()
    weights = pooling_weights(word_ids_tensor([[None, 0, 1, None]], 4), 2, "mean")
    hidden = torch.tensor([[[1.0], [2.0], [3.0], [float("nan")]]])
    from reprsim.extraction.alignment import pool_hidden

    np.testing.assert_array_equal(pool_hidden(hidden, weights)[0].numpy(), [[2.0], [3.0]])
    assert adapter.subword == "last"


@pytest.mark.parametrize("rule", ["first", "last", "mean"])
def test_word_vectors_match_a_plain_loop(rule: str) -> None:
    """Word vectors of listed (row, word) pairs against a per-word loop over the token positions; specials
    and padding hold NaN, which must never reach a word. first/last must be the token's vector exactly."""
    rng = np.random.default_rng(3)
    word_ids = [[None, 0, 0, 1, 2, 2, 2, None], [None, 0, 1, 1, None, None, None, None], [0, 1, 2, 3, 3, 4, 5, 5]]
    n_words = 6
    hidden = torch.from_numpy(rng.standard_normal((2, 3, 8, 4)).astype(np.float32))
    for row, ids in enumerate(word_ids):
        for t, w in enumerate(ids):
            if w is None:
                hidden[:, row, t] = float("nan")
    pairs = [(0, 2), (0, 0), (1, 1), (2, 5), (2, 3), (1, 0)]
    units = torch.tensor([u for u, _ in pairs])
    words = torch.tensor([w for _, w in pairs])
    weights = pooling_weights(word_ids_tensor(word_ids, 8), n_words, rule)
    got = word_vectors(hidden, weights, units, words, rule)
    for layer in range(2):
        for i, (u, w) in enumerate(pairs):
            tokens = [t for t, wid in enumerate(word_ids[u]) if wid == w]
            chosen = {"first": tokens[:1], "last": tokens[-1:], "mean": tokens}[rule]
            want = hidden[layer, u, chosen].numpy().mean(axis=0)
            if rule == "mean":
                np.testing.assert_allclose(got[layer][i].numpy(), want, rtol=1e-6)
            else:
                np.testing.assert_array_equal(got[layer][i].numpy(), want)


# ---- word-level attention ----------------------------------------------------------------------------
def reference_word_attention(att: np.ndarray, word_ids: list[int | None], n: int, causal: bool) -> np.ndarray:
    """Plain loops: TO a word sums its subword columns, FROM a word averages its subword rows; renormalise."""
    out = np.zeros((n, n))
    for i in range(n):
        rows = [t for t, w in enumerate(word_ids) if w == i]
        for j in range(n):
            cols = [t for t, w in enumerate(word_ids) if w == j]
            out[i, j] = sum(att[r, c] for r in rows for c in cols) / len(rows)
        if causal:
            out[i, i + 1 :] = 0.0
        out[i] /= out[i].sum()
    return out


def test_word_attention_hand_computed() -> None:
    # tokens: [CLS] a b1 b2 c [SEP]; word_ids None 0 1 1 2 None
    word_ids = [None, 0, 1, 1, 2, None]
    att = np.array(
        [
            [0.5, 0.1, 0.1, 0.1, 0.1, 0.1],
            [0.4, 0.2, 0.1, 0.1, 0.1, 0.1],
            [0.3, 0.1, 0.2, 0.2, 0.1, 0.1],
            [0.2, 0.1, 0.1, 0.4, 0.1, 0.1],
            [0.1, 0.3, 0.2, 0.1, 0.2, 0.1],
            [0.1, 0.1, 0.1, 0.1, 0.1, 0.5],
        ]
    )
    # By hand, row "a": to a 0.2, to b 0.1+0.1, to c 0.1 -> [0.2, 0.2, 0.1] / 0.5.
    # Row "b": mean of token rows 2 and 3: to a (0.1+0.1)/2, to b (0.4+0.5)/2, to c (0.1+0.1)/2 -> / 0.65.
    # Row "c": to a 0.3, to b 0.3, to c 0.2 -> / 0.8.
    want = np.array([[0.4, 0.4, 0.2], [0.1 / 0.65, 0.45 / 0.65, 0.1 / 0.65], [0.375, 0.375, 0.25]])
    member = word_membership(word_ids_tensor([word_ids], 6), 3)
    got = pool_attention(torch.tensor(att, dtype=torch.float32)[None, None], member)[0, 0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got, reference_word_attention(att, word_ids, 3, causal=False), atol=1e-6)
    # Causal: row "a" keeps only itself; row "b" keeps a and b: [0.1, 0.45] / 0.55; row "c" unchanged.
    causal = causal_mask_rows(torch.tensor(got)).numpy()
    want_causal = np.array([[1.0, 0.0, 0.0], [0.1 / 0.55, 0.45 / 0.55, 0.0], [0.375, 0.375, 0.25]])
    np.testing.assert_allclose(causal, want_causal, atol=1e-6)
    np.testing.assert_allclose(causal, reference_word_attention(att, word_ids, 3, causal=True), atol=1e-6)


def test_fake_model_attention_matches_plain_loop_reference() -> None:
    adapter = fake_adapter()
    out = adapter.encode(SENTENCES, [1, 2], attention=True)
    assert out.attention is not None
    for s, words in enumerate(SENTENCES):
        single = fake_adapter()
        units = single.tokenize([words])
        word_ids = units[0].word_ids
        ids = torch.tensor([units[0].input_ids])
        model_out = single.model(ids, torch.ones_like(ids), output_attentions=True)
        for k, layer in enumerate([1, 2]):
            att = model_out.attentions[layer - 1][0, 0].numpy()
            want = reference_word_attention(att, word_ids, len(words), causal=False)
            got = out.attention[k][s][0].numpy()
            np.testing.assert_allclose(got, want, atol=1e-6)
            np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)


def test_bare_space_piece_gets_no_attention_share() -> None:
    """Word-level attention treats a bare space piece like a special token: its row and column are dropped
    before the rows are renormalised (reference: word ids from the tokenizer's own pieces, plain loops)."""
    adapter = fake_adapter()
    tok = adapter.tokenizer
    out = adapter.encode(SPACED, [1, 2], attention=True)
    assert out.attention is not None
    for s, words in enumerate(SPACED):
        ids: list[int] = [1]
        word_ids: list[int | None] = [None]
        for w, word in enumerate(words):
            for token in tok.pieces(word):
                ids.append(token)
                word_ids.append(None if token == tok.vocab[SPACE_PIECE] else w)
        ids.append(2)
        word_ids.append(None)
        tokens = torch.tensor([ids])
        model_out = adapter.model(tokens, torch.ones_like(tokens), output_attentions=True)
        for k in range(2):
            want = reference_word_attention(model_out.attentions[k][0, 0].numpy(), word_ids, len(words), causal=False)
            np.testing.assert_allclose(out.attention[k][s][0].numpy(), want, atol=1e-6)


def test_drop_space_pieces_by_hand() -> None:
    # tokens: [CLS] ▁ 20 24 ▁ ▁ x [SEP]; words: "2024", "  " (blank), "x"
    word_ids = [None, 0, 0, 0, 1, 1, 2, None]
    space = [False, True, False, False, True, True, False, False]
    assert drop_space_pieces(word_ids, space) == ([None, None, 0, 0, 1, 1, 2, None], [1])
    assert drop_space_pieces([None, 0, 1], [False] * 3) == ([None, 0, 1], [])
    with pytest.raises(ValueError, match="2 whitespace flags for 3 tokens"):
        drop_space_pieces([None, 0, 1], [False, False])


# ---- words that map to no token ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sentence", "word"),
    [(["keep", "gone", "here"], "gone"), (["one", "+glued", "two"], "+glued"), (["one", "~", "two"], "~")],
    ids=["dropped", "merged", "whitespace-only"],
)
def test_word_without_token_is_an_error_naming_sentence_and_word(sentence: list[str], word: str, tmp_path: Any) -> None:
    corpus = Corpus([["fine", "words"], ["more", "fine"], sentence])
    store = ActivationStore(tmp_path / "store")
    with pytest.raises(ValueError, match=r"sentence 2: word 1 .*" + word.replace("+", r"\+")):
        extract(fake_adapter(drop=("gone",)), corpus, store, progress=False)
    assert store.keys() == []  # checked before anything is written


def test_tokenizer_without_word_ids_is_an_error_asking_for_a_fast_one() -> None:
    class LegacyEncoding(FakeEncoding):
        def word_ids(self, i: int) -> list[int | None]:
            raise ValueError("word_ids() is not available when using non-fast tokenizers")

    class LegacyTokenizer(FakeTokenizer):
        def __call__(self, batch: Any, is_split_into_words: bool = False, **kwargs: Any) -> FakeEncoding:
            encoding = super().__call__(batch, is_split_into_words, **kwargs)
            return LegacyEncoding(encoding["input_ids"], [])

    adapter = TransformerAdapter(FakeModel(), LegacyTokenizer(), space_prefix=False)
    with pytest.raises(ValueError, match=r"cannot map tokens to words .*load a tokenizers-backed \(fast\) tokenizer"):
        adapter.tokenize([["ab", "cd"]])


def test_adapter_reports_batch_row_of_bad_sentence() -> None:
    from reprsim.extraction import SentenceError

    with pytest.raises(SentenceError) as info:
        fake_adapter(drop=("gone",)).encode([["ok"], ["ok", "gone"]], [0], attention=False)
    assert info.value.row == 1 and "'gone'" in info.value.reason


# ---- long sentences ----------------------------------------------------------------------------------
def test_plan_windows_hand_example() -> None:
    # 10 one-token words, capacity 4: windows advance by half a window; each word kept from the first
    # window containing it.
    got = [(w.start, w.stop, w.keep_start, w.keep_stop) for w in plan_windows([1] * 10, 4)]
    assert got == [(0, 4, 0, 4), (2, 6, 4, 6), (4, 8, 6, 8), (6, 10, 8, 10)]


@pytest.mark.parametrize("seed", range(20))
def test_plan_windows_properties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = [int(c) for c in rng.integers(1, 6, size=int(rng.integers(1, 60)))]
    capacity = int(rng.integers(max(counts), 25))
    windows = plan_windows(counts, capacity)
    kept = []
    for w in windows:
        assert sum(counts[w.start : w.stop]) <= capacity
        assert w.start <= w.keep_start < w.keep_stop <= w.stop
        kept.extend(range(w.keep_start, w.keep_stop))
    assert kept == list(range(len(counts)))  # every word exactly once, in order
    for word in range(len(counts)):
        earliest = next(i for i, w in enumerate(windows) if w.start <= word < w.stop)
        owner = next(i for i, w in enumerate(windows) if w.keep_start <= word < w.keep_stop)
        assert owner == earliest  # the window with the most left context


def test_plan_windows_rejects_a_word_longer_than_the_window() -> None:
    with pytest.raises(ValueError, match="word 1 alone has 9 tokens"):
        plan_windows([1, 9, 1], 8)


def test_over_long_sentence_is_an_error_naming_it(tmp_path: Any) -> None:
    corpus = Corpus([["ab"] * 3, ["ab"] * 10, ["ab"]])
    adapter = fake_adapter(max_positions=8)
    with pytest.raises(ValueError, match=r"sentence 1: 12 tokens .* context of 8.*window"):
        extract(adapter, corpus, ActivationStore(tmp_path / "store"), progress=False)


def test_window_mode_takes_each_word_from_its_window() -> None:
    # Ten one-piece words, 6 positions = [CLS] + 4 words + [SEP]: windows as in the hand example above.
    words = [chr(ord("a") + i) for i in range(10)]
    adapter = fake_adapter(max_positions=6, long_sentences="window")
    out = adapter.encode([words, ["ab", "cd"]], [1], attention=True)
    rows = out.hidden[0].numpy()
    ids = [adapter.tokenizer.vocab[w] for w in words]
    starts = [0, 0, 0, 0, 2, 2, 4, 4, 6, 6]  # window start of each word's owner window
    for w in range(10):
        assert rows[w, 0] == ids[w]
        assert rows[w, 1] == 1 + w - starts[w]  # position inside its window ([CLS] at 0)
    assert rows[10, 0] == adapter.tokenizer.vocab["ab"] and rows[10, 1] == 1  # the short sentence is untouched
    assert out.attention is not None
    att = out.attention[0][0][0].numpy()
    np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-6)
    for w in range(10):
        outside = [j for j in range(10) if not starts[w] <= j < starts[w] + 4]
        assert np.all(att[w, outside] == 0.0)


class CountingTokenizer(FakeTokenizer):
    """Records every sentence it is asked to tokenize."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[list[str]] = []

    def __call__(self, batch: Any, is_split_into_words: bool = False, **kwargs: Any) -> FakeEncoding:
        self.seen.extend(list(words) for words in batch)
        return super().__call__(batch, is_split_into_words, **kwargs)


def test_validated_sentences_are_not_tokenized_again() -> None:
    """validate keeps its units for tokenize: the same units as tokenizing afresh (windows of a long sentence
    included), each used once; sentences it did not see, and repeats, are tokenized then, and a bad one
    among them is reported at its row in the batch."""
    long = [chr(ord("a") + i) for i in range(10)]
    corpus = [["ab", "cd"], long, ["unbe", "x"], ["ab", "cd"]]

    def adapter() -> TransformerAdapter:
        return TransformerAdapter(
            FakeModel(max_positions=6), CountingTokenizer(drop=("gone",)), space_prefix=False, long_sentences="window"
        )

    fresh, cached = adapter(), adapter()
    for tokenizer in (fresh.tokenizer, cached.tokenizer):  # the fake assigns ids in order of first sight
        tokenizer([*corpus, ["no", "ok"]], is_split_into_words=True)
    cached.validate(corpus)
    cached.tokenizer.seen.clear()
    batch = [corpus[2], corpus[1], ["no", "ok"], corpus[0], corpus[3]]
    assert cached.tokenize(batch) == fresh.tokenize(batch)
    # only the unvalidated sentence and the second copy of a repeated one went to the tokenizer
    assert cached.tokenizer.seen == [["no", "ok"], ["ab", "cd"]]
    from reprsim.extraction import SentenceError

    with pytest.raises(SentenceError) as err:
        cached.tokenize([corpus[2], ["fine"], ["bad", "gone"]])  # corpus[2] was used up: tokenized again
    assert err.value.row == 2 and "word 1" in err.value.reason


def test_extraction_releases_what_validation_kept(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that ends early (here it fails; a resumed run skips the sentences done) leaves no tokenized
    sentences behind in the adapter."""
    import importlib

    extract_module = importlib.import_module("reprsim.extraction.one_model")  # where run_windows is called

    def failing_run(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("model failed")

    adapter = fake_adapter()
    kept: list[int] = []
    original_validate = adapter.validate

    def validate(sentences: Any, chunk: int = 1024) -> None:
        original_validate(sentences, chunk)
        kept.append(len(adapter._validated))

    monkeypatch.setattr(adapter, "validate", validate)
    monkeypatch.setattr(extract_module, "run_windows", failing_run)
    with pytest.raises(RuntimeError, match="model failed"):
        extract(adapter, Corpus([["ab", "cd"], ["ef"]]), ActivationStore(tmp_path / "store"), progress=False)
    assert kept == [2] and adapter._validated == {}


def test_over_long_sentence_window_mode_through_extract(tmp_path: Any) -> None:
    corpus = Corpus([[chr(ord("a") + i) for i in range(10)], ["ab"]])
    store = ActivationStore(tmp_path / "store")
    (entry,) = extract(
        fake_adapter(max_positions=6, long_sentences="window"), corpus, store, layers=[1], progress=False
    )
    assert entry.n_words == 11
    np.testing.assert_array_equal(entry.read_rows(1, 0, 10)[:, 1], [1, 2, 3, 4, 3, 4, 3, 4, 3, 4])


def test_batched_multi_head_attention_matches_plain_loop_and_ignores_nan_at_specials() -> None:
    """Every head of every padded batch row equals the per-sentence loop; NaN/inf at special and pad tokens
    (some attention implementations leave them there) must not reach a word."""
    rng = np.random.default_rng(11)
    rows = [
        [None, 0, 1, 1, 2, None, None, None],  # padded
        [None, 0, 0, 0, 1, 2, 3, None],
        [None, 0, 1, None, None, None, None, None],
    ]
    n_words = [3, 4, 2]
    heads, tokens = 3, 8
    att = rng.random((len(rows), heads, tokens, tokens)).astype(np.float32)
    att /= att.sum(-1, keepdims=True)
    member = word_membership(word_ids_tensor(rows, tokens), max(n_words))
    clean = pool_attention(torch.tensor(att), member).numpy()
    dirty_att = att.copy()
    for b, word_ids in enumerate(rows):
        for t, w in enumerate(word_ids):
            if w is None:  # special or pad token: its row and column
                dirty_att[b, :, t, :] = np.nan
                dirty_att[b, :, :, t] = np.inf
    dirty = pool_attention(torch.tensor(dirty_att), member).numpy()
    np.testing.assert_array_equal(dirty, clean)
    for b, (word_ids, n) in enumerate(zip(rows, n_words, strict=True)):
        for h in range(heads):
            want = reference_word_attention(att[b, h].astype(np.float64), word_ids, n, causal=False)
            np.testing.assert_allclose(clean[b, h, :n, :n], want, atol=1e-6)
        assert not clean[b, :, n:, :].any() and not clean[b, :, :, n:].any()  # padding words stay zero
