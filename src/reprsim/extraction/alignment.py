"""From subword tokens to words: pooling of hidden states and attention, checks, and long-sentence windows.

Everything here works on `word_ids` (for each token, the index of the word it belongs to, or None for special
and padding tokens), never on token positions: where specials sit and which side is padded differs between
tokenizer families, and word_ids is the one description that is right for all of them.

The pooling is one (words x tokens) matrix per sentence, built with vectorised tensor operations, so a batch
of sentences is pooled with one batched matrix product for the hidden states and two for the attention maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

SubwordRule = Literal["last", "first", "mean"]
SUBWORD_RULES: tuple[str, ...] = ("last", "first", "mean")


def check_subword_rule(rule: str) -> None:
    """Reject an unknown pooling rule early, before any model is loaded.

    Parameters
    ----------
    rule : str
        The subword rule: "last", "first" or "mean".

    Raises
    ------
    ValueError
        When it is none of them.
    """
    if rule not in SUBWORD_RULES:
        raise ValueError(f"subword must be one of {', '.join(SUBWORD_RULES)}; got {rule!r}")


def word_ids_tensor(word_ids: Sequence[Sequence[int | None]], length: int) -> torch.Tensor:
    """Pack per-sentence word_ids into a (batch, length) long tensor with -1 for specials and padding.

    Each row is placed where its tokens are, so callers pass word_ids already padded (None at pad
    positions) to `length`.

    Parameters
    ----------
    word_ids : sequence of sequence of int or None
        Each token's word, per batch row.
    length : int
        The padded token length.

    Returns
    -------
    torch.Tensor
        (batch, length) long tensor.

    Raises
    ------
    ValueError
        When a row does not have `length` entries.
    """
    rows = [[-1 if w is None else int(w) for w in ids] for ids in word_ids]
    for i, row in enumerate(rows):
        if len(row) != length:
            raise ValueError(f"word_ids of batch row {i} has {len(row)} entries, expected {length}")
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), length)


def word_membership(word_ids: torch.Tensor, n_words: int) -> torch.Tensor:
    """Build the 0/1 matrix of which token belongs to which word.

    Parameters
    ----------
    word_ids : torch.Tensor
        (batch, tokens) word of each token, -1 for specials and padding (which belong to no word).
    n_words : int
        Words per row (the longest sentence's).

    Returns
    -------
    torch.Tensor
        (batch, words, tokens) float32: 1 where token t belongs to word w.
    """
    one_hot = torch.nn.functional.one_hot(word_ids + 1, num_classes=n_words + 1)[..., 1:]
    return one_hot.transpose(1, 2).to(torch.float32)


def pooling_weights(word_ids: torch.Tensor, n_words: int, rule: str) -> torch.Tensor:
    """Build the weights that turn token vectors into word vectors by a subword rule.

    "first"/"last" put weight 1 on the word's first/last subword (found with a running count of the word's
    tokens from the left or from the right), "mean" spreads 1/k over its k subwords. Rows of words that have
    no token stay zero; `alignment_problem` reports those.

    Parameters
    ----------
    word_ids : torch.Tensor
        (batch, tokens) word of each token, -1 for specials and padding.
    n_words : int
        Words per row.
    rule : str
        "last", "first" or "mean".

    Returns
    -------
    torch.Tensor
        (batch, words, tokens) float32 weights.

    Raises
    ------
    ValueError
        When the rule is unknown.
    """
    check_subword_rule(rule)
    member = word_membership(word_ids, n_words)
    if rule == "first":
        return member * (member.cumsum(-1) == 1)
    if rule == "last":
        from_right = member.flip(-1).cumsum(-1).flip(-1)
        return member * (from_right == 1)
    counts = member.sum(-1, keepdim=True)
    return member / counts.clamp(min=1.0)


def missing_words(word_ids: Sequence[int | None], n_words: int) -> list[int]:
    """List the words that no token maps to (the tokenizer dropped or merged them).

    Parameters
    ----------
    word_ids : sequence of int or None
        Each token's word.
    n_words : int
        Words of the sentence.

    Returns
    -------
    list of int
        The missing words' indices, in order.
    """
    present = {w for w in word_ids if w is not None}
    return [w for w in range(n_words) if w not in present]


def drop_space_pieces(
    word_ids: Sequence[int | None], space: Sequence[bool]
) -> tuple[list[int | None], list[int]]:
    """Take each word's whitespace-only pieces out of the word, as if they were special tokens.

    SentencePiece and byte-level BPE tokenizers often start a word with a bare "▁" or "Ġ" piece (numbers in
    SmolLM2's and Gemma 3's): it sits before the word and, in a causal model, never sees it, so taking it as
    the word's first subword gives different words the same vector. Such a piece is pooled into no word.

    Parameters
    ----------
    word_ids : sequence of int or None
        Each token's word.
    space : sequence of bool
        Whether each token decodes to whitespace only.

    Returns
    -------
    tuple
        (word_ids with those pieces set to None, the words that have nothing but such pieces).

    Raises
    ------
    ValueError
        When the two sequences differ in length.
    """
    if len(space) != len(word_ids):
        raise ValueError(f"{len(space)} whitespace flags for {len(word_ids)} tokens")
    if not any(space):
        return list(word_ids), []  # the usual sentence: nothing to take out
    content = {w for w, blank in zip(word_ids, space, strict=True) if w is not None and not blank}
    blank_words = sorted({w for w in word_ids if w is not None} - content)
    kept = [None if w is not None and blank and w in content else w for w, blank in zip(word_ids, space, strict=True)]
    return kept, blank_words


def alignment_problem(
    word_ids: Sequence[int | None], words: Sequence[str], model: str, blank_words: Sequence[int] = ()
) -> str | None:
    """Explain why a sentence's tokens do not cover its words one-to-one.

    A word with no token (the tokenizer dropped it, or merged it into a neighbour) would shift every later
    word of the corpus against the other models, so callers treat any problem as an error naming the word.

    Parameters
    ----------
    word_ids : sequence of int or None
        Each token's word.
    words : sequence of str
        The sentence's words.
    model : str
        The model's name, for the message.
    blank_words : sequence of int, optional
        Words whose every token is whitespace (see drop_space_pieces), which have no vector either.

    Returns
    -------
    str or None
        The problem, naming the first word concerned; None when every word has a token.
    """
    extra = sorted({w for w in word_ids if w is not None and not 0 <= w < len(words)})
    if extra:
        return f"{model}'s tokenizer reports word index {extra[0]} but the sentence has {len(words)} words"
    if blank_words:
        w = blank_words[0]
        return (
            f"word {w} {words[w]!r} is only whitespace to {model}'s tokenizer ({len(blank_words)} such word(s) "
            "in this sentence); clean or drop the sentence (empty or whitespace-only word)"
        )
    gaps = missing_words(word_ids, len(words))
    if gaps:
        w = gaps[0]
        return (
            f"word {w} {words[w]!r} maps to no token of {model} ({len(gaps)} such word(s) in this sentence); "
            "clean or drop the sentence (zero-width or control characters, a lone combining mark, empty word)"
        )
    return None


def pool_hidden(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Pool token vectors into word vectors, in float32.

    Token positions that carry no word are zeroed first, so a NaN or inf at a pad position cannot leak into
    a word through a zero weight (0 * NaN is NaN). For "first"/"last" the weights are 0/1, so the result is
    the chosen token's vector exactly.

    Parameters
    ----------
    hidden : torch.Tensor
        (batch, tokens, d) token vectors.
    weights : torch.Tensor
        (batch, words, tokens) pooling weights (see pooling_weights).

    Returns
    -------
    torch.Tensor
        (batch, words, d) float32 word vectors.
    """
    used = weights.sum(1) > 0  # (batch, tokens): token contributes to some word
    clean = torch.where(used.unsqueeze(-1), hidden.to(torch.float32), 0.0)
    return torch.bmm(weights, clean)


def word_vectors(
    hidden: Sequence[torch.Tensor] | torch.Tensor,
    weights: torch.Tensor,
    units: torch.Tensor,
    words: torch.Tensor,
    rule: str,
) -> list[torch.Tensor]:
    """Compute the float32 vectors of the listed words, layer by layer.

    "first"/"last" gather the chosen subword's vector directly (the same values as pool_hidden's 0/1
    product, without the padded (batch, words, d) intermediate); "mean" pools.

    Parameters
    ----------
    hidden : torch.Tensor or sequence of torch.Tensor
        (layers, batch, tokens, d), or a sequence of (batch, tokens, d).
    weights : torch.Tensor
        (batch, words, tokens) pooling weights of `rule`.
    units, words : torch.Tensor
        Listed word i is word words[i] of batch row units[i].
    rule : str
        "last", "first" or "mean".

    Returns
    -------
    list of torch.Tensor
        One (len(units), d) float32 tensor per layer.

    Raises
    ------
    ValueError
        When a listed word has no token.
    """
    if rule == "mean":
        return [pool_hidden(layer, weights)[units, words] for layer in hidden]
    chosen = weights[units, words]  # (rows, tokens): a single 1 on each word's chosen subword
    if not bool((chosen.sum(-1) > 0).all()):
        raise ValueError("a listed word has no token (alignment_problem reports such words first)")
    tokens = chosen.argmax(-1)
    return [layer[units, tokens].to(torch.float32) for layer in hidden]


def pool_attention(attention: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """Pool subword attention maps into word-level maps.

    Attention TO a word sums its subword columns; attention FROM a word averages its subword rows; special
    and pad tokens are dropped, then each row is renormalised to sum to 1 (Wu et al. 2020). Rows of words
    absent from a sentence (padding words) come out as zeros.

    Parameters
    ----------
    attention : torch.Tensor
        (batch, heads, tokens, tokens) maps.
    member : torch.Tensor
        (batch, words, tokens) membership (see word_membership).

    Returns
    -------
    torch.Tensor
        (batch, heads, words, words) float32 maps.

    Raises
    ------
    ValueError
        When a present word's row sums to zero (all its attention went to special tokens).
    """
    member = member.to(torch.float32)
    counts = member.sum(-1, keepdim=True)  # (B, W, 1)
    row_mean = member / counts.clamp(min=1.0)
    maps = attention.to(torch.float32)
    words = _pool_maps(maps, member, row_mean)
    sums = words.sum(-1, keepdim=True)
    if not bool(torch.isfinite(sums).all()):
        # A NaN or inf at a special or pad token leaks through its zero weight (0 * NaN is NaN): drop those
        # tokens first. Checked on the row sums, so clean maps (the usual case) are never copied.
        used = member.sum(1) > 0  # (B, T)
        mask = (used.unsqueeze(-1) & used.unsqueeze(-2)).unsqueeze(1)
        words = _pool_maps(torch.where(mask, maps, 0.0), member, row_mean)
        sums = words.sum(-1, keepdim=True)
    _check_row_sums(sums, present=counts.squeeze(-1) > 0)
    # In place, on the products' own storage: absent words' rows are exactly zero (their pooling weights
    # are), and every present row's sum is positive (checked), so no row needs the zeroing renormalise_rows
    # does for general input.
    return words.div_(torch.where(sums > 0, sums, 1.0))


def _pool_maps(maps: torch.Tensor, member: torch.Tensor, row_mean: torch.Tensor) -> torch.Tensor:
    """Compute row_mean @ maps @ member^T for every head as two batched products over the batch only."""
    b, h, t, _ = maps.shape
    w = member.shape[1]
    to_words = torch.bmm(maps.reshape(b, h * t, t), member.transpose(1, 2))  # (B, H*T, W): summed columns
    by_token = to_words.view(b, h, t, w).transpose(1, 2).reshape(b, t, h * w)  # (B, T, H*W)
    return torch.bmm(row_mean, by_token).view(b, w, h, w).transpose(1, 2)  # (B, H, W, W): averaged rows


def renormalise_rows(attention: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
    """Divide each row of attention maps by its sum.

    A real word whose row sums to zero (all its attention went to dropped tokens and underflowed) has no
    defined distribution: raise rather than divide by zero.

    Parameters
    ----------
    attention : torch.Tensor
        (..., n, n) maps.
    present : torch.Tensor, optional
        (batch, words) marks real words; rows of absent (padding) words stay zero. None: every row is real.

    Returns
    -------
    torch.Tensor
        The renormalised maps.

    Raises
    ------
    ValueError
        When a real word's row does not sum to a positive number.
    """
    sums = attention.sum(-1, keepdim=True)
    _check_row_sums(sums, present)
    return torch.where(sums > 0, attention / torch.where(sums > 0, sums, 1.0), 0.0)


def _check_row_sums(sums: torch.Tensor, present: torch.Tensor | None) -> None:
    """Raise for a present word's row (all rows when `present` is None) whose sum is not positive."""
    if present is None:
        present_rows = torch.ones(sums.shape[:-1], dtype=torch.bool, device=sums.device)
    else:
        present_rows = present.unsqueeze(1).expand(sums.shape[:-1])
    bad = present_rows & ~(sums.squeeze(-1) > 0)
    if bool(bad.any()):
        where = [int(i) for i in torch.nonzero(bad)[0]]
        raise ValueError(
            f"word-level attention row {where} sums to {float(sums.squeeze(-1)[tuple(where)])}: all of that "
            "word's attention went to special tokens (or underflowed); try dtype float32"
        )


def causal_mask_rows(attention: torch.Tensor) -> torch.Tensor:
    """Keep attention to the word itself and earlier words only, then renormalise each row.

    Applied to every model when causal attention is requested, so bidirectional and left-to-right models are
    compared on the same footing (Wu et al. 2020). The diagonal is kept, so no row becomes empty unless all of
    its mass was on later words, which `renormalise_rows` reports.

    Parameters
    ----------
    attention : torch.Tensor
        (..., n, n) word-level maps.

    Returns
    -------
    torch.Tensor
        The masked, renormalised maps.

    Raises
    ------
    ValueError
        When a row had all its mass on later words.
    """
    n = attention.shape[-1]
    lower = torch.tril(torch.ones(n, n, dtype=torch.bool, device=attention.device))
    return renormalise_rows(torch.where(lower, attention, 0.0))


@dataclass(frozen=True)
class WordWindow:
    """A run of consecutive words of one sentence fed to the model as one sequence.

    Parameters
    ----------
    start, stop : int
        The model sees words [start, stop).
    keep_start, keep_stop : int
        The words [keep_start, keep_stop) are taken from this window.
    """

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def plan_windows(token_counts: Sequence[int], capacity: int) -> list[WordWindow]:
    """Split a sentence whose tokens exceed `capacity` into overlapping windows of whole words.

    Each window holds as many whole words as fit. The next window starts at the earliest word such that the
    overlap (the words before the first new word) holds at most half the capacity, so windows advance by
    about half a window. Each word is taken from the earliest window that contains it, which is the window
    where it has the most left context: every word after the first window sees at least about half a window
    of left context (less only when single words are very long).

    Parameters
    ----------
    token_counts : sequence of int
        Tokens of each word.
    capacity : int
        Tokens a window may hold (the context minus special tokens).

    Returns
    -------
    list of WordWindow
        The windows, in order; their kept ranges cover every word once.

    Raises
    ------
    ValueError
        When the capacity is below 1, or one word alone has more tokens than it.
    """
    if capacity < 1:
        raise ValueError(f"window capacity must be at least 1 token, got {capacity}")
    n = len(token_counts)
    for i, c in enumerate(token_counts):
        if c > capacity:
            raise ValueError(f"word {i} alone has {c} tokens, more than the model's {capacity}")
    windows: list[WordWindow] = []
    start, kept = 0, 0
    while kept < n:
        stop, used = start, 0
        while stop < n and used + token_counts[stop] <= capacity:
            used += token_counts[stop]
            stop += 1
        windows.append(WordWindow(start, stop, kept, stop))
        kept = stop
        if stop == n:
            break
        nxt = stop
        overlap = 0
        while (
            nxt - 1 > start
            and overlap + token_counts[nxt - 1] <= capacity // 2
            and overlap + token_counts[nxt - 1] + token_counts[stop] <= capacity
        ):
            nxt -= 1
            overlap += token_counts[nxt]
        start = nxt
    return windows
