"""Tiny randomly initialised transformers of nine families, built offline, through extraction end to end.

For each family the stored word vectors must equal the model's own hidden states at the chosen subword,
computed here independently: one sentence alone, no padding, token positions picked by hand from word_ids,
with the family's expected space-prefix / BOS convention written out in FAMILIES. Word-level attention is
compared with a plain-loop reduction of the model's own subword attention. Also: padding on either side,
an LSTM language model through the WordAdapter protocol, and model loading errors.
"""

from __future__ import annotations

import itertools
import json
import string
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers as tr

from reprsim.corpus import Corpus
from reprsim.extraction import AdapterOutput, TransformerAdapter, WordAdapter, extract
from reprsim.store import ActivationStore

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "un", "believ", "able", "happen", "ed"]
LETTERS = list(string.ascii_lowercase + string.ascii_uppercase + ".,'!?-[]<>|_")
SENTENCES = [
    ["the", "cat", "sat", "on", "the", "mat", "."],
    ["unbelievable", "dog"],
    ["[SEP]", "cat", "<s>", "happened", "!"],
    ["on", "the", "mat", "the", "dog", "sat", "un", "happened", "."],
]

# ---- tokenizers from tiny vocabulary files (alignment-pitfalls.md: offline constructors) -------------


def wordpiece_tokenizer(tmp: Path, cls: Any = tr.BertTokenizer) -> Any:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *LETTERS, *("##" + c for c in LETTERS)]
    vocab += WORDS + ["##" + w for w in WORDS]
    path = tmp / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    return cls(vocab=str(path), do_lower_case=False)


def byte_level_files(tmp: Path, specials: list[str]) -> tuple[str, str]:
    """GPT-2 style vocab.json / merges.txt: all 256 byte symbols, "Ġ"+letter, and whole tiny words."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbols = [chr(b) for b in printable]
    symbols += [chr(256 + n) for n in range(256 - len(printable))]
    merges: list[tuple[str, str]] = [("Ġ", c) for c in string.ascii_letters]
    tokens = specials + symbols + ["Ġ" + c for c in string.ascii_letters]
    for word in WORDS:
        for start in (word[0], "Ġ" + word[0]):
            current = start
            for ch in word[1:]:
                merges.append((current, ch))
                current += ch
                tokens.append(current)
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    (tmp / "vocab.json").write_text(json.dumps(vocab))
    lines = [f"{a} {b}" for a, b in dict.fromkeys(merges)]
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n")
    return str(tmp / "vocab.json"), str(tmp / "merges.txt")


def unigram_vocab(specials: list[str]) -> list[tuple[str, float]]:
    pieces = [(s, 0.0) for s in specials] + [("▁", -2.0)]
    pieces += [(c, -3.0) for c in LETTERS] + [("▁" + c, -3.5) for c in LETTERS]
    pieces += [("▁" + w, -1.0) for w in WORDS] + [(w, -1.5) for w in WORDS]
    return list(dict.fromkeys(pieces))


def llama_tokenizer() -> Any:
    tokens = ["<unk>", "<s>", "</s>", "▁", *LETTERS]
    merges = []
    for word in WORDS:
        current = "▁"
        for ch in word:
            merges.append((current, ch))
            current += ch
            tokens.append(current)
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    return tr.LlamaTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)))


SMALL = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}


def build_family(family: str, tmp: Path) -> tuple[torch.nn.Module, Any]:
    """A tiny random model and its tokenizer (seeded, eval mode)."""
    torch.manual_seed(0)
    if family in ("bert", "distilbert", "electra"):
        tok_cls = {
            "bert": tr.BertTokenizer,
            "distilbert": tr.DistilBertTokenizer,
            "electra": tr.ElectraTokenizer,
        }
        tok = wordpiece_tokenizer(tmp, tok_cls[family])
        if family == "bert":
            model = tr.BertModel(tr.BertConfig(vocab_size=len(tok), max_position_embeddings=64, **SMALL))
        elif family == "distilbert":
            config = tr.DistilBertConfig(
                vocab_size=len(tok), dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=64
            )
            model = tr.DistilBertModel(config)
        else:
            config = tr.ElectraConfig(vocab_size=len(tok), embedding_size=8, max_position_embeddings=64, **SMALL)
            model = tr.ElectraModel(config)
    elif family == "gpt2":
        tok = tr.GPT2Tokenizer(*byte_level_files(tmp, ["<|endoftext|>"]))
        config = tr.GPT2Config(
            vocab_size=len(tok),
            n_embd=16,
            n_layer=2,
            n_head=2,
            n_positions=64,
            bos_token_id=0,
            eos_token_id=0,
        )
        model = tr.GPT2Model(config)
    elif family == "roberta":
        tok = tr.RobertaTokenizer(*byte_level_files(tmp, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
        config = tr.RobertaConfig(
            vocab_size=len(tok),
            max_position_embeddings=66,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            **SMALL,
        )
        model = tr.RobertaModel(config)
    elif family == "xlnet":
        specials = ["<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>"]
        tok = tr.XLNetTokenizer(vocab=unigram_vocab(specials), unk_id=0)
        config = tr.XLNetConfig(
            vocab_size=len(tok),
            d_model=16,
            n_layer=2,
            n_head=2,
            d_inner=32,
            pad_token_id=5,
            bos_token_id=1,
            eos_token_id=2,
        )
        model = tr.XLNetModel(config)
    elif family == "albert":
        tok = tr.AlbertTokenizer(
            vocab=unigram_vocab(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]), do_lower_case=False
        )
        config = tr.AlbertConfig(vocab_size=len(tok), embedding_size=8, max_position_embeddings=64, **SMALL)
        model = tr.AlbertModel(config)
    elif family == "t5":
        tok = tr.T5Tokenizer(vocab=unigram_vocab(["<pad>", "</s>", "<unk>"]), extra_ids=0)
        config = tr.T5Config(vocab_size=len(tok), d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2)
        model = tr.T5EncoderModel(config)
    elif family == "llama":
        tok = llama_tokenizer()
        config = tr.LlamaConfig(
            vocab_size=len(tok),
            max_position_embeddings=64,
            num_key_value_heads=1,
            bos_token_id=1,
            eos_token_id=2,
            **SMALL,
        )
        model = tr.LlamaModel(config)
    else:
        raise KeyError(family)
    return model.eval(), tok


# family: (words 2..n get a " " prefix, a BOS id is prepended) -- the conventions of alignment-pitfalls.md
FAMILIES: dict[str, tuple[bool, bool]] = {
    "bert": (False, False),
    "distilbert": (False, False),
    "electra": (False, False),
    "albert": (False, False),
    "xlnet": (False, False),
    "t5": (False, False),
    "gpt2": (True, True),
    "roberta": (True, False),
    "llama": (False, True),
}


def reference_tokens(tok: Any, words: Sequence[str], prefix: bool, bos: bool) -> tuple[list[int], list[Any]]:
    texts = [words[0]] + [(" " + w if prefix else w) for w in words[1:]]
    enc = tok([texts], is_split_into_words=True, add_special_tokens=True, split_special_tokens=True)
    ids, word_ids = list(enc["input_ids"][0]), list(enc.word_ids(0))
    if bos:
        ids, word_ids = [tok.bos_token_id, *ids], [None, *word_ids]
    # A piece that decodes to whitespace alone (a bare "▁" or "Ġ") belongs to no word, unless it is all the
    # word has (then extraction raises): one decode per token.
    blank = [
        w is not None and not tok.decode([i], clean_up_tokenization_spaces=False).strip()
        for i, w in zip(ids, word_ids, strict=True)
    ]
    for w in {x for x in word_ids if x is not None}:
        pieces = [t for t, x in enumerate(word_ids) if x == w]
        if not all(blank[t] for t in pieces):
            for t in pieces:
                if blank[t]:
                    word_ids[t] = None
    return ids, word_ids


def reference_run(model: torch.nn.Module, ids: list[int], attention: bool) -> Any:
    """The model on one sentence alone: no padding, default positions."""
    if attention:
        model.set_attn_implementation("eager")  # type: ignore[operator]
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), output_hidden_states=True, output_attentions=attention)


def reference_vectors(hidden: torch.Tensor, word_ids: list[Any], n_words: int, rule: str) -> np.ndarray:
    """Plain loop: each word's positions from word_ids, then its last / first / mean subword."""
    rows = []
    for w in range(n_words):
        positions = [t for t, x in enumerate(word_ids) if x == w]
        assert positions, f"word {w} has no token in the reference tokenization"
        vectors = hidden[0, positions].double().numpy()
        rows.append({"last": vectors[-1], "first": vectors[0], "mean": vectors.mean(0)}[rule])
    return np.stack(rows)


def reference_attention(att: np.ndarray, word_ids: list[Any], n_words: int) -> np.ndarray:
    """Plain loop: TO a word sums its subword columns, FROM a word averages its rows; rows renormalised."""
    out = np.zeros((att.shape[0], n_words, n_words))
    for i in range(n_words):
        rows = [t for t, x in enumerate(word_ids) if x == i]
        for j in range(n_words):
            cols = [t for t, x in enumerate(word_ids) if x == j]
            out[:, i, j] = att[:, rows][:, :, cols].sum(axis=(1, 2)) / len(rows)
    return out / out.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def saved_families(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each tiny model saved as a local model folder (safetensors + tokenizer files)."""
    folders = {}
    for family in FAMILIES:
        work = tmp_path_factory.mktemp(f"{family}-vocab")
        model, tok = build_family(family, work)
        folder = tmp_path_factory.mktemp("models") / f"tiny-{family}"
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        folders[family] = folder
    return folders


@pytest.mark.parametrize("family", list(FAMILIES))
def test_stored_vectors_equal_the_models_own_hidden_states(
    family: str, saved_families: dict[str, Path], tmp_path: Path
) -> None:
    folder = saved_families[family]
    prefix, bos = FAMILIES[family]
    corpus = Corpus(SENTENCES)
    store = ActivationStore(tmp_path / "store")
    # Reference model and tokenizer loaded here, independently of the extraction code.
    model = (
        tr.AutoModelForTextEncoding.from_pretrained(folder) if family == "t5" else tr.AutoModel.from_pretrained(folder)
    )
    model.eval()
    tok = tr.AutoTokenizer.from_pretrained(folder)
    for rule in ("last", "first", "mean"):
        attention = rule == "last"  # eager + attention maps once; SDPA hidden states for the others
        (entry,) = extract(
            str(folder),
            corpus,
            store,
            subword=rule,
            attention=attention,
            batch_size=3,
            device="cpu",
            progress=False,
        )
        n_layers = model.config.num_hidden_layers + 1
        assert entry.layer_ids == list(range(n_layers))
        offset = 0
        attention_maps = {layer: list(entry.iter_attention(layer)) for layer in range(1, n_layers)} if attention else {}
        for s, words in enumerate(SENTENCES):
            ids, word_ids = reference_tokens(tok, words, prefix, bos)
            out = reference_run(model, ids, attention)
            for layer in range(n_layers):
                want = reference_vectors(out.hidden_states[layer], word_ids, len(words), rule)
                got = entry.read_rows(layer, offset, offset + len(words))
                np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5, err_msg=f"{family} {rule} layer {layer}")
                if attention and layer > 0:
                    att = out.attentions[layer - 1][0].numpy()
                    stored = attention_maps[layer][s]
                    np.testing.assert_allclose(stored.sum(-1), 1.0, atol=1e-5)
                    np.testing.assert_allclose(stored, reference_attention(att, word_ids, len(words)), atol=2e-5)
            offset += len(words)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("side", ["left", "right"])
def test_batch_padding_does_not_change_results(family: str, side: str, tmp_path: Path) -> None:
    model, tok = build_family(family, tmp_path)
    adapter = TransformerAdapter(model, tok, padding_side=side, name=family)
    layers = list(range(len(adapter.layer_widths)))
    batch = adapter.encode(SENTENCES, layers, attention=True)
    assert batch.attention is not None
    offset = 0
    for s, words in enumerate(SENTENCES):
        alone = adapter.encode([words], layers, attention=True)
        assert alone.attention is not None
        for k in range(len(layers)):
            got = np.asarray(batch.hidden[k])[offset : offset + len(words)]
            np.testing.assert_allclose(got, np.asarray(alone.hidden[k]), atol=1e-5, rtol=1e-5)
            np.testing.assert_allclose(np.asarray(batch.attention[k][s]), np.asarray(alone.attention[k][0]), atol=1e-5)
        offset += len(words)


def test_adapter_detects_family_conventions(tmp_path: Path) -> None:
    for family, (prefix, bos) in FAMILIES.items():
        (tmp_path / family).mkdir()
        model, tok = build_family(family, tmp_path / family)
        adapter = TransformerAdapter(model, tok)
        assert (adapter.space_prefix, adapter.prepend_bos) == (prefix, bos), family
    assert adapter.padding_side == "left"  # llama's tokenizer pads left


# ---- a user's own PyTorch model through the WordAdapter protocol ---------------------------------------


class TinyLSTMLanguageModel(torch.nn.Module):
    """A word-level LSTM LM: embeddings (layer 0) and two stacked LSTM layers (layers 1, 2)."""

    def __init__(self, vocabulary: list[str], width: int = 8) -> None:
        super().__init__()
        self.index = {w: i + 1 for i, w in enumerate(vocabulary)}  # 0 = unknown word
        self.embed = torch.nn.Embedding(len(vocabulary) + 1, width)
        self.lstms = torch.nn.ModuleList([torch.nn.LSTM(width, width, batch_first=True) for _ in range(2)])

    def layer_outputs(self, ids: torch.Tensor) -> list[torch.Tensor]:
        outputs = [self.embed(ids)]
        for lstm in self.lstms:
            outputs.append(lstm(outputs[-1])[0])
        return outputs


class LSTMAdapter:
    """The documented example: per-sentence forward, so no padding question arises."""

    name = "lstm"

    def __init__(self, model: TinyLSTMLanguageModel) -> None:
        self.model = model.eval()

    @property
    def layer_widths(self) -> list[int]:
        return [self.model.embed.embedding_dim] * (1 + len(self.model.lstms))

    @property
    def attention_heads(self) -> list[int]:
        return [0] * len(self.layer_widths)

    def fingerprint(self) -> dict[str, Any]:
        return {"weights": [float(p.detach().double().sum()) for p in self.model.parameters()]}

    def encode(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], attention: bool) -> AdapterOutput:
        per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
        with torch.inference_mode():
            for words in sentences:
                ids = torch.tensor([[self.model.index.get(w, 0) for w in words]])
                outputs = self.model.layer_outputs(ids)
                for k, layer in enumerate(layers):
                    per_layer[k].append(outputs[layer][0])
        return AdapterOutput(hidden=per_layer)


def test_lstm_adapter_through_extract(tmp_path: Path) -> None:
    torch.manual_seed(0)
    corpus = Corpus(SENTENCES)
    lm = TinyLSTMLanguageModel(sorted({w for s in SENTENCES for w in s}))
    adapter = LSTMAdapter(lm)
    assert isinstance(adapter, WordAdapter)
    store = ActivationStore(tmp_path / "store")
    (entry,) = extract(adapter, corpus, store, layers=[0, 2], attention=True, batch_size=2, progress=False)
    assert entry.name == "lstm" and entry.layer_ids == [0, 2] and not entry.has_attention
    # Reference: a hand-written LSTM recurrence over each sentence with the module's own weights.
    offset = 0
    for words in SENTENCES:
        x = lm.embed.weight.detach()[[lm.index[w] for w in words]]
        np.testing.assert_allclose(entry.read_rows(0, offset, offset + len(words)), x.numpy(), atol=1e-6)
        for lstm in lm.lstms:
            w_ih, w_hh = lstm.weight_ih_l0.detach(), lstm.weight_hh_l0.detach()
            b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
            h = torch.zeros(w_hh.shape[1])
            c = torch.zeros(w_hh.shape[1])
            states = []
            for t in range(len(words)):
                i, f, g, o = (w_ih @ x[t] + w_hh @ h + b).chunk(4)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                states.append(h)
            x = torch.stack(states)
        np.testing.assert_allclose(entry.read_rows(2, offset, offset + len(words)), x.numpy(), atol=1e-5)
        offset += len(words)


class BrokenAdapter(LSTMAdapter):
    """Returns one word too few for the batch: the driver must catch it."""

    def encode(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], attention: bool) -> AdapterOutput:
        out = super().encode(sentences, layers, attention)
        return AdapterOutput(hidden=[torch.cat(list(h))[:-1] for h in out.hidden])


def test_adapter_with_wrong_word_count_is_rejected(tmp_path: Path) -> None:
    torch.manual_seed(0)
    lm = TinyLSTMLanguageModel(["the"])
    with pytest.raises(ValueError, match=r"shape \(8, 8\).*corpus has 9 words"):
        extract(BrokenAdapter(lm), Corpus([SENTENCES[3]]), tmp_path / "store", progress=False)


class MisbehavingAdapter(LSTMAdapter):
    """The LSTM adapter with uniform attention on layers 1 and 2, broken in one named way."""

    def __init__(self, model: TinyLSTMLanguageModel, fault: str) -> None:
        super().__init__(model)
        self.fault = fault

    @property
    def attention_heads(self) -> list[int]:
        heads = [0] + [2] * (len(self.layer_widths) - 1)
        return heads[:-1] if self.fault == "heads_list" else heads

    def encode(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], attention: bool) -> AdapterOutput:
        out = super().encode(sentences, layers, attention)
        hidden = [list(h) for h in out.hidden]
        if self.fault == "order":
            hidden = [h[::-1] for h in hidden]  # sentences back in another order than asked
        if self.fault == "transposed":
            hidden = [[x.T for x in h] for h in hidden]
        if self.fault == "huge":
            hidden[0][0] = hidden[0][0].double() * 1e300  # finite in float64, infinite in float32
        if self.fault == "complex":  # casting would keep the real part with only a warning
            hidden[1][0] = hidden[1][0].to(torch.complex64)
        if self.fault == "complex numpy":
            hidden[1][1] = hidden[1][1].numpy().astype(np.complex128)
        if self.fault == "bool":
            hidden[0][1] = hidden[0][1] > 0
        maps = [[torch.full((0 if layer == 0 else 2, len(w), len(w)), 1.0 / len(w)) for w in sentences]
                for layer in layers]
        if self.fault in ("unnormalised", "negative", "nan"):
            maps[-1][0] = maps[-1][0] * {"unnormalised": 2.0, "negative": -1.0, "nan": float("nan")}[self.fault]
        if self.fault == "tuple":
            return (hidden, maps)  # type: ignore[return-value]
        return AdapterOutput(hidden=hidden, attention=maps)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("order", r"sentence 0, layer 0: adapter returned shape \(2, 8\), expected \(7, 8\).*in the order given"),
        ("transposed", r"sentence \d, layer 0: adapter returned shape \(8, \d\), expected"),
        ("unnormalised", r"sentence \d, layer 2: attention row \(head 0, word 0\) sums to 2 "),
        ("negative", r"sentence \d, layer 2: attention row .* sums to -1 .*non-negative"),
        ("nan", r"sentence \d, layer 2: attention row .* sums to nan"),
        ("tuple", r"encode returned tuple; it must return AdapterOutput"),
        ("huge", r"layer 0: values up to .*e\+3\d\d exceed float32's range"),
        ("complex", r"layer 1: values of type torch.complex64; activations must be real"),
        ("complex numpy", r"layer 1: values of type complex128; activations must be real"),
        ("bool", r"layer 0: values of type torch.bool; activations must be real"),
        ("heads_list", r"attention_heads has 2 entries and layer_widths 3"),
    ],
)
def test_a_misbehaving_adapter_is_stopped_with_the_sentence_and_layer(fault: str, message: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    lm = TinyLSTMLanguageModel(sorted({w for s in SENTENCES for w in s}))
    corpus = Corpus([SENTENCES[0], SENTENCES[1]])  # 7 and 2 words, in one batch
    store = ActivationStore(tmp_path / "store")
    with pytest.raises(ValueError, match=message):
        extract(MisbehavingAdapter(lm, fault), corpus, store, batch_size=2, progress=False)
    assert store.entries() == []
    (entry,) = extract(MisbehavingAdapter(lm, "none"), corpus, store, batch_size=2, progress=False)
    np.testing.assert_allclose(next(entry.iter_attention(2)), np.full((2, 7, 7), 1 / 7), rtol=1e-6)


# ---- loading errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c, s: extract("no-such-org/no-such-model", c, s), "not a preset"),
        (lambda c, s: extract("minilmm", c, s), "did you mean 'minilm'"),
        (lambda c, s: extract("minilm", c, s, max_sentences=5), r"max_sentences=5 .* has 4 sentences"),
        (lambda c, s: extract("SmolLM", c, s), "did you mean 'smollm2'"),
        (lambda c, s: extract("./missing/folder", c, s), "does not exist"),
        (lambda c, s: extract("minilm", c, s, subword="middle"), "subword must be one of"),
        (lambda c, s: extract("minilm", c, s, dtype="int8"), "dtype must be one of"),
        (lambda c, s: extract("minilm", c, s, batch_size=0), "batch_size must be"),
        (lambda c, s: extract("minilm", c, s, layers=[0, -1]), "layer -1 is not"),
        (lambda c, s: extract("minilm", c, s, long_sentences="truncate"), "long_sentences must be"),
        (lambda c, s: extract("minilm", c, s, device="tpu"), "device must be"),
        (lambda c, s: extract(["minilm", "minilm"], c, s), "share the display name"),
        (lambda c, s: extract(["minilm"], c, s, names=["a", "b"]), "names has 2 labels"),
        (lambda c, s: extract("minilm", c, s, causal_attention=True, attention=False), "needs attention"),
    ],
)
def test_bad_arguments_raise_clear_errors(call: Callable[[Corpus, Path], Any], message: str, tmp_path: Path) -> None:
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        call(Corpus(SENTENCES), tmp_path / "store")


def test_folder_without_config_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no config\.json"):
        extract(str(tmp_path / "empty"), Corpus(SENTENCES), tmp_path / "store", progress=False)


def test_layer_beyond_the_model_is_rejected(saved_families: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"layer 7 does not exist in tiny-bert: it has layers 0..2"):
        extract(str(saved_families["bert"]), Corpus(SENTENCES), tmp_path / "store", layers=[0, 7], progress=False)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_models_store_close_values(dtype: str, saved_families: dict[str, Path], tmp_path: Path) -> None:
    corpus = Corpus(SENTENCES)
    folder = str(saved_families["bert"])
    full = extract(folder, corpus, tmp_path / "store", layers=[2], attention=False, progress=False)[0]
    half = extract(folder, corpus, tmp_path / "store", layers=[2], attention=False, dtype=dtype, progress=False)[0]
    assert half.dtype == dtype and half.key != full.key
    a, b = full.read_rows(2, 0, full.n_words), half.read_rows(2, 0, half.n_words)
    assert b.dtype in (np.float32, np.float16)
    tolerance = 0.1 if dtype == "bfloat16" else 0.01  # 8 vs 11 significant bits, through two layers
    np.testing.assert_allclose(b, a, atol=tolerance * np.abs(a).max())
    assert not np.array_equal(b.astype(np.float32), a)


# ---- the store write that overlaps the next window's forward pass --------------------------------------
def _many_sentences(n: int) -> Corpus:
    return Corpus([list(SENTENCES[i % len(SENTENCES)]) for i in range(n)])


class FlakyAdapter(LSTMAdapter):
    """Raises once it has seen `fail_at` sentences (windows are 256 sentences); counts what it encodes."""

    def __init__(self, model: TinyLSTMLanguageModel, fail_at: int | None) -> None:
        super().__init__(model)
        self.encoded = 0
        self.fail_at = fail_at

    def encode(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], attention: bool) -> AdapterOutput:
        if self.fail_at is not None and self.encoded >= self.fail_at:
            raise RuntimeError("model failed mid-run")
        self.encoded += len(sentences)
        return super().encode(sentences, layers, attention)


def test_failure_during_next_window_still_commits_the_window_being_written(tmp_path: Path) -> None:
    torch.manual_seed(0)
    lm = TinyLSTMLanguageModel(sorted({w for s in SENTENCES for w in s}))
    corpus = _many_sentences(600)
    store = ActivationStore(tmp_path / "store")
    with pytest.raises(RuntimeError, match="model failed mid-run"):
        extract(FlakyAdapter(lm, fail_at=256), corpus, store, batch_size=64, progress=False)
    # The first window was handed to the writer before the failure: it is durable, and a rerun resumes there.
    rerun = FlakyAdapter(lm, fail_at=None)
    (entry,) = extract(rerun, corpus, store, batch_size=64, progress=False)
    assert rerun.encoded == 600 - 256
    reference = ActivationStore(tmp_path / "ref")
    (expected,) = extract(FlakyAdapter(lm, fail_at=None), corpus, reference, batch_size=64, progress=False)
    for layer in entry.layer_ids:
        np.testing.assert_array_equal(
            entry.read_rows(layer, 0, entry.n_words), expected.read_rows(layer, 0, entry.n_words)
        )


def test_failed_store_write_stops_extraction_with_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reprsim.store import EntryWriter

    original = EntryWriter.write_sentences

    def failing(self: EntryWriter, start: int, stop: int, *args: Any, **kwargs: Any) -> None:
        if start >= 256:
            raise OSError("No space left on device")
        original(self, start, stop, *args, **kwargs)

    monkeypatch.setattr(EntryWriter, "write_sentences", failing)
    torch.manual_seed(0)
    lm = TinyLSTMLanguageModel(sorted({w for s in SENTENCES for w in s}))
    store = ActivationStore(tmp_path / "store")
    with pytest.raises(OSError, match="No space left"):
        extract(LSTMAdapter(lm), _many_sentences(600), store, batch_size=64, progress=False)
    assert store.entries() == [] and len(store.incomplete()) == 1
    # the first window was committed: a rerun resumes after it
    progress = store.path / store.incomplete()[0] / "progress.json"
    assert json.loads(progress.read_text())["done_sentences"] == 256


class CountingAdapter(LSTMAdapter):
    """Counts the sentences it encodes and calls `on_encode(count)` before each batch."""

    def __init__(self, model: TinyLSTMLanguageModel, on_encode: Any = None) -> None:
        super().__init__(model)
        self.encoded = 0
        self.on_encode = on_encode

    def encode(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], attention: bool) -> AdapterOutput:
        if self.on_encode is not None:
            self.on_encode(self.encoded)
        self.encoded += len(sentences)
        return super().encode(sentences, layers, attention)


def test_store_write_overlaps_the_next_windows_forward_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each window's write starts only once the model is computing the next window (a loop that writes before
    it computes would time out here), and is slow: over four windows, buffers the model filled while a write
    was reading others must not have changed what was written (compared with a run that writes in turn)."""
    from reprsim.store import EntryWriter

    torch.manual_seed(0)
    lm = TinyLSTMLanguageModel(sorted({w for s in SENTENCES for w in s}))
    # windows of 256, 256, 256, 132 sentences, each window's sentences shifted by one against the last, so that
    # rows of one window written in place of another's would differ
    corpus = Corpus([list(SENTENCES[(i + i // 256) % len(SENTENCES)]) for i in range(900)])
    (expected,) = extract(LSTMAdapter(lm), corpus, ActivationStore(tmp_path / "ref"), batch_size=64, progress=False)

    original = EntryWriter.write_sentences
    windows_started: dict[int, threading.Event] = {s: threading.Event() for s in (256, 512, 768)}

    def slow_overlapping_write(self: EntryWriter, start: int, stop: int, *args: Any, **kwargs: Any) -> None:
        if stop in windows_started:
            assert windows_started[stop].wait(timeout=20), f"the window after {stop} was not computed meanwhile"
        time.sleep(0.2)  # let the model fill the next buffers while this write holds its own
        original(self, start, stop, *args, **kwargs)

    def on_encode(done: int) -> None:
        for first, event in windows_started.items():
            if done >= first:
                event.set()

    monkeypatch.setattr(EntryWriter, "write_sentences", slow_overlapping_write)
    adapter = CountingAdapter(lm, on_encode=on_encode)
    (entry,) = extract(adapter, corpus, ActivationStore(tmp_path / "store"), batch_size=64, progress=False)
    assert adapter.encoded == 900
    for layer in entry.layer_ids:
        np.testing.assert_array_equal(
            entry.read_rows(layer, 0, entry.n_words), expected.read_rows(layer, 0, expected.n_words)
        )


def test_failed_store_write_stops_the_next_window_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails is reported between batches of the window being computed, not after all of it."""
    from reprsim.store import EntryWriter

    def failing(self: EntryWriter, start: int, stop: int, *args: Any, **kwargs: Any) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(EntryWriter, "write_sentences", failing)
    torch.manual_seed(0)
    lm = TinyLSTMLanguageModel(sorted({w for s in SENTENCES for w in s}))
    # Window 2 has 32 batches of 8; each waits 20 ms, so the failed write (instant) is seen after a few.
    adapter = CountingAdapter(lm, on_encode=lambda done: time.sleep(0.02) if done >= 256 else None)
    with pytest.raises(OSError, match="No space left"):
        extract(adapter, _many_sentences(600), ActivationStore(tmp_path / "store"), batch_size=8, progress=False)
    assert 256 <= adapter.encoded <= 256 + 8 * 10, adapter.encoded


# ---- remembered model checksums ------------------------------------------------------------------------
def test_file_checksums_are_remembered_until_a_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sha256_files equals hashlib over the same bytes; a second call on unchanged files reads nothing; a
    file replaced by one of the same size and modification time (cp -p) is hashed afresh; a file changed
    within the last seconds is never remembered."""
    import hashlib
    import os
    import shutil

    from reprsim.extraction import presets

    monkeypatch.setenv("REPRSIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(presets, "RACY_NS", 0)  # these files were all written just now
    folder = tmp_path / "model"
    folder.mkdir()
    files = [folder / "config.json", folder / "weights.bin"]
    files[0].write_text("{}")
    files[1].write_bytes(bytes(range(256)) * 10)

    def reference() -> str:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    assert presets.folder_sha256(folder) == reference()
    reads: list[Path] = []
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self in files:
            reads.append(self)
        return real_open(self, *args, **kwargs)

    def checksum_reads() -> list[Path]:
        """The model files folder_sha256 reads (the reference is computed first, outside the count)."""
        want = reference()
        reads.clear()
        assert presets.folder_sha256(folder) == want
        return list(reads)

    monkeypatch.setattr(Path, "open", counting_open)
    assert checksum_reads() == []
    # another checkpoint of the same size copied in place with its times kept (cp -p): its ctime is new
    other = tmp_path / "other.bin"
    other.write_bytes(bytes(range(255, -1, -1)) * 10)
    stat = files[1].stat()
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    time.sleep(0.01)
    with open(other, "rb") as source, open(files[1], "r+b") as target:  # same inode, same size
        shutil.copyfileobj(source, target)
    os.utime(files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert files[1].stat().st_mtime_ns == stat.st_mtime_ns and files[1].stat().st_ino == stat.st_ino
    assert checksum_reads() == files
    assert checksum_reads() == []
    # a file changed within the racy interval is hashed every time
    monkeypatch.setattr(presets, "RACY_NS", 10**18)
    files[0].write_text('{"a": 1}')
    assert checksum_reads() == files
    assert checksum_reads() == files
    # a damaged cache file is only a cache
    (tmp_path / "cache" / presets.DIGEST_CACHE).write_text("[not a dict")
    assert presets.folder_sha256(folder) == reference()


@pytest.mark.parametrize("n", [1, 63, 64, 65, 255, 256, 257, 511, 512, 1000, 1024, 1300])
def test_windows_cover_the_corpus_on_a_grid_with_a_finer_last_window(n: int) -> None:
    from reprsim.extraction.plan import window_bounds

    bounds = window_bounds(0, n, size=256, tail=64)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in itertools.pairwise(bounds))
    last_full = ((n - 1) // 256) * 256  # where the corpus's last 256-window starts
    for a, b in bounds:
        if a < last_full:
            assert a % 256 == 0 and b == a + 256
        else:  # the last window is cut on the 64 grid, so the write nothing overlaps is at most 64 sentences
            assert a % 64 == 0 and b - a <= 64
    # A resumed run (done on any boundary) forms exactly the remaining windows of an uninterrupted one.
    for k, (a, _) in enumerate(bounds):
        assert window_bounds(a, n, size=256, tail=64) == bounds[k:]
    with pytest.raises(ValueError, match="must divide"):
        window_bounds(0, n, size=256, tail=100)


def test_window_buffers_are_separate_writable_sets() -> None:
    """The two buffer sets alternate, are cut to each window's size, and never share memory (one is written
    to disk while the other fills)."""
    from reprsim.extraction.windows import WindowBuffers

    buffers = WindowBuffers([3, 5], capacity=10, heads=[0, 2], square_capacity=7)
    first_hidden, first_maps = buffers.take(4, squares=6)
    assert len(buffers._sets) == 1  # the second set only once a second window needs it
    second_hidden, second_maps = buffers.take(10, squares=7)
    assert [h.shape for h in first_hidden] == [(4, 3), (4, 5)]
    assert [h.shape for h in second_hidden] == [(10, 3), (10, 5)]
    assert first_maps is not None and second_maps is not None
    assert first_maps[0] is None and first_maps[1].shape == (12,) and second_maps[1].shape == (14,)
    arrays = [*first_hidden, *second_hidden, first_maps[1], second_maps[1]]
    for k, array in enumerate(arrays):
        assert array.dtype == np.float32 and array.flags.writeable and array.flags.c_contiguous
        array[...] = k
    for k, array in enumerate(arrays):  # each kept its own value: no two share memory
        assert (array == k).all()
    again, _ = buffers.take(2)  # the first set comes round again
    assert np.shares_memory(again[0], first_hidden[0])


@pytest.mark.parametrize(
    ("family", "limit"),
    # From the configs built above: BERT max_position_embeddings=64; RoBERTa 66 minus its padding offset
    # (positions start at padding_idx + 1 = 2); GPT-2 n_positions=64; XLNet has no position table.
    [("bert", 64), ("roberta", 64), ("gpt2", 64), ("xlnet", None)],
)
def test_context_limit_of_each_family(family: str, limit: int | None, tmp_path: Path) -> None:
    from reprsim.extraction.transformer import context_limit

    model, tok = build_family(family, tmp_path)
    assert context_limit(model, tok) == limit


def test_a_model_in_training_mode_is_run_in_eval_mode(tmp_path: Path) -> None:
    model, tok = build_family("bert", tmp_path)
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.5
    model = type(model)(model.config).train()  # dropout active, as a freshly built or fine-tuned model is
    adapter = TransformerAdapter(model, tok, name="bert")
    assert not model.training
    first, second = (adapter.encode(SENTENCES, [2], attention=False).hidden[0] for _ in range(2))
    torch.testing.assert_close(first, second, rtol=0, atol=0)  # no dropout: the same vectors twice
