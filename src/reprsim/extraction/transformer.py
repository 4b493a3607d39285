"""`TransformerAdapter`: any Hugging Face transformer seen as a `WordAdapter`.

The model may be an encoder, a decoder, or the encoder of a seq2seq model. Tokenizer families differ in where
they put special tokens, which side they pad, and whether a pre-split word gets the leading-space marker it
has in running text (docs: alignment-pitfalls). The adapter handles them by probing the tokenizer once
(probes.py) instead of switching on model names:
- space prefix: if tokenizing pre-split words differs from running text and prefixing " " to words 2..n makes
  it equal (GPT-2, RoBERTa, SmolLM2 byte-level BPE), words 2..n get the prefix;
- padding side: the tokenizer's own (left for Llama and XLNet); with left padding, models with learned
  absolute positions get position_ids counted from the first real token;
- attention sink: a causal decoder whose tokenizer puts nothing before the first word gets its BOS token
  prepended (and dropped again), so the first word is not the position that soaks up attention (SmolLM2:
  id 1);
- literal "[SEP]", "<s>", "<|im_end|>" in the text stay words (split_special_tokens=True).

Tokenizing word by word, and windowing long sentences, is `reprsim.extraction.tokenization`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reprsim.extraction.adapter import AdapterOutput
from reprsim.extraction.alignment import (
    check_subword_rule,
    pool_attention,
    pooling_weights,
    word_ids_tensor,
    word_membership,
    word_vectors,
)
from reprsim.extraction.probes import (
    accepts_position_ids,
    context_limit,
    needs_space_prefix,
    opening_cls_token,
    positions_from_padding,
    vocabulary_sha256,
    wants_bos_prepended,
    weights_sha256,
)
from reprsim.extraction.rows import TEXT_ROW_RULES, pool_text_rows, text_token_weights
from reprsim.extraction.tokenization import (
    LONG_SENTENCE_MODES,
    SentenceTokenization,
    TokenizedUnit,
    check_long_sentences,
)

__all__ = [
    "LONG_SENTENCE_MODES",
    "TokenizedUnit",
    "TransformerAdapter",
    "check_long_sentences",
    "context_limit",
]


class TransformerAdapter(SentenceTokenization):
    """A transformers model plus its tokenizer, producing word vectors and word-level attention.

    hidden_states[0] is the embedding output (layer 0), hidden_states[l] the output of block l; attention of
    layer l is block l's map (layer 0 has none). The model is used in eval mode under torch.inference_mode.
    Arguments left as None default to what the tokenizer and model imply (see the module docstring) and can
    be forced for unusual models.

    Parameters
    ----------
    model : torch.nn.Module
        A transformers model (put in eval mode).
    tokenizer : transformers tokenizer
        Its fast tokenizer.
    subword : str, default "last"
        Which subwords make a word's vector: "last", "first" or "mean".
    long_sentences : str, default "error"
        Sentences over the context: "error", or "window" (overlapping windows).
    padding_side : str, optional
        "left" or "right"; by default the tokenizer's.
    prepend_bos : bool, optional
        Prepend the BOS token; by default for causal decoders whose tokenizer puts nothing before the first
        word.
    space_prefix : bool, optional
        Prefix " " to words 2..n; by default when the tokenizer needs it to match running text.
    max_tokens : int, optional
        The context limit; by default read from the config and tokenizer.
    identity : dict, optional
        A JSON-able description of the weights for the store key; by default a sha256 of the parameters and
        of the tokenizer's vocabulary.
    name : str, default "model"
        The display name, in messages.

    Raises
    ------
    ValueError
        When an option is invalid, or prepend_bos is asked of a tokenizer without a BOS token.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        subword: str = "last",
        long_sentences: str = "error",
        padding_side: str | None = None,
        prepend_bos: bool | None = None,
        space_prefix: bool | None = None,
        max_tokens: int | None = None,
        identity: dict[str, Any] | None = None,
        name: str = "model",
    ) -> None:
        check_subword_rule(subword)
        check_long_sentences(long_sentences)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.subword = subword
        self.long_sentences = long_sentences
        self.name = name
        side = padding_side or getattr(tokenizer, "padding_side", None) or "right"
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right'; got {side!r}")
        self.padding_side = side
        self.space_prefix = needs_space_prefix(tokenizer) if space_prefix is None else space_prefix
        self.prepend_bos = wants_bos_prepended(model, tokenizer) if prepend_bos is None else prepend_bos
        if self.prepend_bos and getattr(tokenizer, "bos_token_id", None) is None:
            raise ValueError(f"prepend_bos=True but {name}'s tokenizer has no BOS token")
        self.max_tokens = context_limit(model, tokenizer) if max_tokens is None else max_tokens
        self.position_ids_for_left_padding = accepts_position_ids(model) and not positions_from_padding(model)
        self.cls_token_id = opening_cls_token(model, tokenizer)  # what first-token text rows take, if any
        self._identity = identity
        self._validated: dict[tuple[str, ...], list[TokenizedUnit]] = {}  # see validate
        self._space_ids: dict[int, bool] = {}  # token id -> decodes to whitespace only (see drop_space_pieces)
        config: Any = model.config
        n_blocks = int(config.num_hidden_layers)
        self._widths = [int(config.hidden_size)] * (n_blocks + 1)
        self._heads = [0] + [int(config.num_attention_heads)] * n_blocks

    # ---- WordAdapter protocol -------------------------------------------------------------------------
    @property
    def layer_widths(self) -> list[int]:
        """Width of each layer: the embeddings, then every block."""
        return list(self._widths)

    @property
    def attention_heads(self) -> list[int]:
        """Heads of each layer: 0 for the embeddings, then every block's."""
        return list(self._heads)

    def fingerprint(self) -> dict[str, Any]:
        """Describe the weights and tokenizer, and every adapter setting that changes the word vectors.

        Returns
        -------
        dict
            JSON-able identity for the store key (hashes the weights unless an identity was given).
        """
        identity = self._identity
        if identity is None:
            identity = {
                "class": type(self.model).__name__,
                "weights_sha256": weights_sha256(self.model),
                "vocabulary_sha256": vocabulary_sha256(self.tokenizer),
            }
        return {
            **identity,
            "subword": self.subword,
            "long_sentences": self.long_sentences,
            "space_prefix": self.space_prefix,
            "prepend_bos": self.prepend_bos,
        }

    def encode(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], attention: bool) -> AdapterOutput:
        """Compute the word vectors (and word-level attention) of some layers for a batch of sentences.

        Parameters
        ----------
        sentences : sequence of sequence of str
            The batch's sentences, as words.
        layers : sequence of int
            Layer ids (0 = embeddings).
        attention : bool
            Also compute word-level attention maps.

        Returns
        -------
        AdapterOutput
            Per layer, the batch's words x width (sentences concatenated in batch order), and with
            attention per layer each sentence's (heads, words, words) maps.

        Raises
        ------
        SentenceError
            When a sentence cannot be tokenized word by word or is over the context (in "error" mode).
        RuntimeError
            When the model returns other hidden states than its config implies, or no attention maps.
        """
        units = self.tokenize(sentences)
        input_ids, mask, word_ids, position_ids = self._pad(units)
        outputs = self._forward(input_ids, mask, position_ids, attention)
        hidden_states = outputs.hidden_states
        if len(hidden_states) != len(self._widths):
            raise RuntimeError(
                f"{self.name} returned {len(hidden_states)} hidden states, but its config implies "
                f"{len(self._widths)} (embeddings + num_hidden_layers)"
            )
        n_words = max(u.window.stop - u.window.start for u in units)
        wid = word_ids_tensor(word_ids, input_ids.shape[1]).to(input_ids.device)
        weights = pooling_weights(wid, n_words, self.subword)
        unit_index, word_index = (t.to(input_ids.device) for t in self._kept_rows(units))
        chosen = [hidden_states[layer] for layer in layers]
        hidden = [h.cpu() for h in word_vectors(chosen, weights, unit_index, word_index, self.subword)]
        if not attention:
            return AdapterOutput(hidden=hidden)
        member = word_membership(wid, n_words)
        maps = []
        for layer in layers:
            if layer == 0:
                maps.append([torch.zeros(0, len(s), len(s)) for s in sentences])
                continue
            words = pool_attention(outputs.attentions[layer - 1], member).cpu()
            maps.append(self._sentence_maps(words, units, [len(s) for s in sentences]))
        return AdapterOutput(hidden=hidden, attention=maps)

    def encode_texts(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], rows: str) -> AdapterOutput:
        """Compute one text-level row per sentence for some layers, pooled from the model's own tokens.

        The rules are those of `reprsim.extraction.rows`: "last-token" (the last token that belongs to a
        word), "mean" (the mean over those tokens) and "first-token" (the CLS token when the model has one
        that opens the sequence, see ``cls_token_id``, else the first token that belongs to a word).

        Parameters
        ----------
        sentences : sequence of sequence of str
            The batch's sentences, as words.
        layers : sequence of int
            Layer ids (0 = embeddings).
        rows : str
            "last-token", "mean" or "first-token".

        Returns
        -------
        AdapterOutput
            Per layer, a (sentences, width) float32 tensor in batch order; no attention.

        Raises
        ------
        ValueError
            When the rule is not a text-level one.
        SentenceError
            When a sentence cannot be tokenized word by word or is over the context (in "error" mode).
        RuntimeError
            When the model returns other hidden states than its config implies.
        """
        if rows not in TEXT_ROW_RULES:
            raise ValueError(f"encode_texts pools text-level rows ({', '.join(TEXT_ROW_RULES)}); got {rows!r}")
        units = self.tokenize(sentences)
        input_ids, mask, word_ids, position_ids = self._pad(units)
        hidden_states = self._forward(input_ids, mask, position_ids, attention=False).hidden_states
        if len(hidden_states) != len(self._widths):
            raise RuntimeError(
                f"{self.name} returned {len(hidden_states)} hidden states, but its config implies "
                f"{len(self._widths)} (embeddings + num_hidden_layers)"
            )
        wid = word_ids_tensor(word_ids, input_ids.shape[1])
        keep_from = torch.tensor([[u.window.keep_start - u.window.start] for u in units], dtype=torch.long)
        keep_to = torch.tensor([[u.window.keep_stop - u.window.start] for u in units], dtype=torch.long)
        first_real = mask.cpu().argmax(-1)
        ids = input_ids.cpu()
        cls_first = torch.tensor(
            [self.cls_token_id is not None and u.window.start == 0 and int(ids[i, first_real[i]]) == self.cls_token_id
             for i, u in enumerate(units)],
            dtype=torch.bool,
        )
        unit_rows = torch.tensor([u.row for u in units], dtype=torch.long)
        weights = text_token_weights(
            (wid >= keep_from) & (wid < keep_to), first_real, cls_first, unit_rows, len(sentences), rows
        )
        return AdapterOutput(
            hidden=[pool_text_rows(hidden_states[layer], weights, unit_rows, len(sentences)).cpu() for layer in layers]
        )

    # ---- model ------------------------------------------------------------------------------------------
    def _pad(
        self, units: list[TokenizedUnit]
    ) -> tuple[torch.Tensor, torch.Tensor, list[list[int | None]], torch.Tensor | None]:
        """Pad units to one length on the tokenizer's side; position ids when left padding needs them."""
        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        pad_id = 0 if pad_id is None else int(pad_id)
        length = max(len(u.input_ids) for u in units)
        ids: list[list[int]] = []
        mask: list[list[int]] = []
        word_ids: list[list[int | None]] = []
        for u in units:
            n_pad = length - len(u.input_ids)
            pads: list[int | None] = [None] * n_pad
            if self.padding_side == "left":
                ids.append([pad_id] * n_pad + u.input_ids)
                mask.append([0] * n_pad + [1] * len(u.input_ids))
                word_ids.append(pads + u.word_ids)
            else:
                ids.append(u.input_ids + [pad_id] * n_pad)
                mask.append([1] * len(u.input_ids) + [0] * n_pad)
                word_ids.append(u.word_ids + pads)
        device = next(self.model.parameters()).device
        input_ids = torch.tensor(ids, dtype=torch.long, device=device)
        attention_mask = torch.tensor(mask, dtype=torch.long, device=device)
        position_ids = None
        if self.padding_side == "left" and self.position_ids_for_left_padding:
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return input_ids, attention_mask, word_ids, position_ids

    def _forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None,
        attention: bool,
    ) -> Any:
        """One forward pass; eager attention only when maps are wanted (SDPA returns none)."""
        if attention and getattr(self.model.config, "_attn_implementation", "eager") != "eager":
            self.model.set_attn_implementation("eager")  # type: ignore[operator]
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        with torch.inference_mode():
            outputs = self.model(**kwargs, output_hidden_states=True, output_attentions=attention)
        if attention and not outputs.attentions:
            raise RuntimeError(f"{self.name} returned no attention maps; it needs attn_implementation='eager'")
        return outputs

    @staticmethod
    def _kept_rows(units: list[TokenizedUnit]) -> tuple[torch.Tensor, torch.Tensor]:
        """Find the (unit, word) indices of the word vectors to keep, in sentence order."""
        unit_index: list[int] = []
        word_index: list[int] = []
        for u_idx, u in enumerate(units):
            keep = range(u.window.keep_start - u.window.start, u.window.keep_stop - u.window.start)
            unit_index.extend([u_idx] * len(keep))
            word_index.extend(keep)
        return torch.tensor(unit_index, dtype=torch.long), torch.tensor(word_index, dtype=torch.long)

    @staticmethod
    def _sentence_maps(words: torch.Tensor, units: list[TokenizedUnit], lengths: list[int]) -> list[torch.Tensor]:
        """Per-sentence (heads, n, n) maps; a windowed sentence takes each word's row from its window."""
        maps: list[torch.Tensor | None] = [None] * len(lengths)
        for u_idx, u in enumerate(units):
            w = u.window
            n = lengths[u.row]
            if w.start == 0 and w.stop == n:
                maps[u.row] = words[u_idx, :, :n, :n]
                continue
            whole = maps[u.row]
            if whole is None:
                whole = maps[u.row] = torch.zeros(words.shape[1], n, n)
            rows = slice(w.keep_start - w.start, w.keep_stop - w.start)
            whole[:, w.keep_start : w.keep_stop, w.start : w.stop] = words[u_idx, :, rows, : w.stop - w.start]
        return [m if m is not None else torch.zeros(words.shape[1], n, n) for m, n in zip(maps, lengths, strict=True)]
