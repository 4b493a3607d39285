"""What TransformerAdapter learns by probing a tokenizer and a model once, instead of switching on model names.

Also the sha256 identities of weights and vocabulary that key a model's store entries.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import Any

import torch

PROBE_WORDS = ["Hello", "world", "again"]
# Tokenizers without a real limit report model_max_length as ~1e30; anything above this is "no limit".
_NO_LIMIT = 1_000_000


def call_tokenizer(tokenizer: Any, word_lists: list[list[str]]) -> tuple[list[list[int]], list[list[int | None]]]:
    """Tokenize pre-split word lists, literal special-token text kept as text.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        A tokenizers-backed (fast) tokenizer.
    word_lists : list of list of str
        The sentences' words.

    Returns
    -------
    tuple of list
        (token ids, word index of each token (None for special tokens)), per word list.

    Raises
    ------
    ValueError
        When the tokenizer cannot map tokens to words (a slow tokenizer).
    """
    enc = tokenizer(word_lists, is_split_into_words=True, add_special_tokens=True, split_special_tokens=True)
    ids = [list(map(int, row)) for row in enc["input_ids"]]
    try:
        word_ids = [list(enc.word_ids(i)) for i in range(len(word_lists))]
    except (ValueError, AttributeError, NotImplementedError) as err:
        raise ValueError(
            f"tokenizer {type(tokenizer).__name__} cannot map tokens to words (word_ids): {err}; "
            "load a tokenizers-backed (fast) tokenizer"
        ) from None
    return ids, word_ids


def needs_space_prefix(tokenizer: Any) -> bool:
    """Tell whether words 2..n need a " " prefix for pre-split tokenization to match running text.

    Byte-level BPE tokenizers (GPT-2, RoBERTa, SmolLM2) encode the space before a word into its first token;
    given pre-split words without add_prefix_space they silently glue each word to the previous one.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        A fast tokenizer.

    Returns
    -------
    bool
        True when pre-split words tokenize differently from running text, and prefixing " " fixes it.
    """
    plain, _ = call_tokenizer(tokenizer, [PROBE_WORDS])
    prefixed, _ = call_tokenizer(tokenizer, [[PROBE_WORDS[0]] + [" " + w for w in PROBE_WORDS[1:]]])
    running = [int(i) for i in tokenizer(" ".join(PROBE_WORDS), split_special_tokens=True)["input_ids"]]
    return plain[0] != running and prefixed[0] == running


def is_causal_decoder(model: torch.nn.Module) -> bool:
    """Tell whether a model reads left to right (GPT-2, Llama, SmolLM2, Gemma).

    Parameters
    ----------
    model : torch.nn.Module
        A transformers model.

    Returns
    -------
    bool
        True when one of its attention modules says ``is_causal``.
    """
    return any(getattr(m, "is_causal", False) is True for m in model.modules())


def wants_bos_prepended(model: torch.nn.Module, tokenizer: Any) -> bool:
    """Tell whether to prepend BOS: a causal decoder whose tokenizer puts nothing before the first word.

    Without it the first word would be the position that soaks up attention (an attention sink).

    Parameters
    ----------
    model : torch.nn.Module
        A transformers model.
    tokenizer : transformers tokenizer
        Its fast tokenizer.

    Returns
    -------
    bool
        True for a causal decoder with a BOS token whose tokenizer starts sentences with a word's token.
    """
    if getattr(tokenizer, "bos_token_id", None) is None or not is_causal_decoder(model):
        return False
    _, word_ids = call_tokenizer(tokenizer, [PROBE_WORDS])
    return word_ids[0][0] is not None


def opening_cls_token(model: torch.nn.Module, tokenizer: Any) -> int | None:
    """Find the CLS token that text-level first-token rows take, if the model has one.

    Parameters
    ----------
    model : torch.nn.Module
        A transformers model.
    tokenizer : transformers tokenizer
        Its fast tokenizer.

    Returns
    -------
    int or None
        The tokenizer's cls_token_id when the model is not a causal decoder and the tokenizer opens a
        sequence with it (BERT's [CLS], RoBERTa's and MPNet's <s>); None otherwise (decoders, XLNet's
        trailing <cls>, T5).
    """
    cls_id = getattr(tokenizer, "cls_token_id", None)
    if cls_id is None or is_causal_decoder(model):
        return None
    ids, _ = call_tokenizer(tokenizer, [PROBE_WORDS])
    return int(cls_id) if ids[0] and ids[0][0] == cls_id else None


def positions_from_padding(model: torch.nn.Module) -> bool:
    """Tell whether a model derives position ids from the pad mask (RoBERTa, MPNet).

    Such models handle left padding themselves and must not be given position_ids.

    Parameters
    ----------
    model : torch.nn.Module
        A transformers model.

    Returns
    -------
    bool
        True when its position table has a padding index.
    """
    return any(
        isinstance(m, torch.nn.Embedding) and "position" in name and m.padding_idx is not None
        for name, m in model.named_modules()
    )


def accepts_position_ids(model: torch.nn.Module) -> bool:
    """Tell whether a model's forward takes position_ids (learned absolute positions, RoPE).

    Parameters
    ----------
    model : torch.nn.Module
        A transformers model.

    Returns
    -------
    bool
        True when ``forward`` has a ``position_ids`` parameter.
    """
    return "position_ids" in inspect.signature(model.forward).parameters


def context_limit(model: torch.nn.Module, tokenizer: Any) -> int | None:
    """Find the longest token sequence a model can take.

    Read from the config (max_position_embeddings / n_positions / n_ctx), minus the padding offset of models
    whose positions start after the pad index (RoBERTa: 514 - 2), and capped by the tokenizer's
    model_max_length when that is a real number (vocabulary-file tokenizers report ~1e30).

    Parameters
    ----------
    model : torch.nn.Module
        A transformers model.
    tokenizer : transformers tokenizer
        Its tokenizer.

    Returns
    -------
    int or None
        Tokens, special tokens included; None when the model has no fixed limit (T5, XLNet).
    """
    config = getattr(model, "config", None)
    limit: int | None = None
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            limit = value
            break
    if limit is not None:
        offsets = [
            m.padding_idx + 1
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Embedding) and "position" in name and m.padding_idx is not None
        ]
        if offsets:
            limit -= max(offsets)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < _NO_LIMIT:
        limit = tokenizer_limit if limit is None else min(limit, tokenizer_limit)
    return limit


def weights_sha256(model: torch.nn.Module) -> str:
    """Hash a model's parameters and buffers (names, shapes, dtypes, bytes), in state-dict order.

    Parameters
    ----------
    model : torch.nn.Module
        The model.

    Returns
    -------
    str
        The sha256, hex.
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def vocabulary_sha256(tokenizer: Any) -> str:
    """Hash a tokenizer's vocabulary (token -> id), which decides how words are split.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        The tokenizer.

    Returns
    -------
    str
        The sha256, hex.
    """
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()
