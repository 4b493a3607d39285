"""Unicode clean-up shared by every corpus loader.

Text is normalised once, to NFC, *before* it is split into words: NFC never changes word boundaries, while
NFKC turns spacing diacritics such as "´" into space + combining mark and so changes word counts (see
README, "Corpora"). After splitting, every character of Unicode category Cc (control) or Cf (format:
zero-width space, zero-width joiner, byte-order mark, soft hyphen, direction marks, ...) is dropped from each
word, because subword tokenizers map such characters to zero tokens and a word without tokens has no vector.
A word that becomes empty is removed from its sentence.
"""

from __future__ import annotations

import unicodedata

# Unicode general categories whose characters are removed from words.
DROPPED_CATEGORIES = frozenset({"Cc", "Cf"})


def normalize_text(text: str) -> str:
    """Normalise text to Unicode NFC (canonical composition), the one normalisation applied to corpora.

    Parameters
    ----------
    text : str
        Any text.

    Returns
    -------
    str
        `text` in NFC.
    """
    return unicodedata.normalize("NFC", text)


def clean_word(word: str) -> str:
    """Drop control (Cc) and format (Cf) characters (ZWSP, ZWJ, BOM, soft hyphen, ...) from one word.

    Parameters
    ----------
    word : str
        One word; it is not normalised here (see `normalize_text`).

    Returns
    -------
    str
        The word without those characters; possibly empty.
    """
    if word.isascii() and word.isprintable():
        return word  # fast path: printable ASCII has no Cc/Cf characters
    return "".join(ch for ch in word if unicodedata.category(ch) not in DROPPED_CATEGORIES)


def clean_sentence(words: list[str]) -> list[str]:
    """Normalise (NFC) and clean each word of a sentence, removing words that become empty.

    Parameters
    ----------
    words : list of str
        The sentence's words.

    Returns
    -------
    list of str
        The cleaned words, in order; empty if no word survives.
    """
    cleaned = (clean_word(normalize_text(word)) for word in words)
    return [word for word in cleaned if word]
