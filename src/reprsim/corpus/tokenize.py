"""A small deterministic sentence splitter and word tokenizer for running English prose.

It is used for the built-in corpus, whose documents are one paragraph per line. The rules are a simplified
Penn-Treebank style, chosen so that every step is easy to state and to test:

Sentences: a document is split on whitespace into raw tokens. A sentence ends after a raw token that, once
closing quotes and brackets are stripped, ends in ".", "?" or "!", when the next raw token begins (after
opening quotes and brackets) with an upper-case letter or a digit, and the token is not an abbreviation
(a title such as "Mr." or "Dr.", a month such as "Jan.", a single-letter initial such as "W.", or a dotted
acronym such as "U.S."). The last raw token always ends a sentence.

Words: each raw token is split into
- leading opening punctuation: ``"`` ``(`` ``[`` ``{`` ``$`` “ ‘ and ``'`` (not before a digit, as in '90s);
- trailing closing punctuation: ``"`` ``)`` ``]`` ``}`` ``,`` ``;`` ``:`` ``?`` ``!`` ” ’ ``'`` and "...",
  plus a "." on the last token of a sentence;
- English clitics at the end of the remaining core: n't 's 're 've 'll 'd 'm (either apostrophe), so
  "don't" -> "do" "n't" and "Sydney's" -> "Sydney" "'s".
Hyphenated words, numbers such as 4:00pm or 1,000, and inner apostrophes (O'Connor) stay whole. Double quotes
are kept as ``"`` (not converted to PTB's `` and '').
"""

from __future__ import annotations

import re

OPENERS = frozenset('"([{$“‘' + "'")
CLOSERS = frozenset('")]},;:?!”’' + "'")
SENTENCE_END = frozenset(".?!")
ELLIPSIS = "..."
# Lower-cased abbreviations (without the final ".") that never end a sentence.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st mt jr sr gen sen rep gov lt col capt sgt cpl no vs etc inc ltd co corp dept "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
DOTTED_ACRONYM = re.compile(r"^(?:[A-Za-z]\.){2,}$")
CLITIC = re.compile(r"^(.+?)(n['’]t|['’](?:s|re|ve|ll|d|m))$", re.IGNORECASE)


def _strip_closers(token: str) -> str:
    """Remove trailing closing quotes and brackets (to look at the token's final punctuation)."""
    return token.rstrip("\"')]}”’")


def _strip_openers(token: str) -> str:
    """Remove leading opening quotes and brackets."""
    return token.lstrip("\"'([{“‘")


def is_abbreviation(token: str) -> bool:
    """Tell whether a raw token is an abbreviation, whose final period does not end a sentence.

    Abbreviations are titles and other listed short forms ("Mr.", "Dr.", "Gen.", "etc."), month names
    ("Jan.", "Sept."), single-letter initials ("W.") and dotted acronyms ("U.S."), compared in lower case and
    after stripping surrounding quotes and brackets.

    Parameters
    ----------
    token : str
        A raw, whitespace-delimited token.

    Returns
    -------
    bool
        True if the token (without quotes and brackets) ends in "." and is one of those forms.
    """
    core = _strip_openers(_strip_closers(token))
    if not core.endswith("."):
        return False
    stem = core[:-1]
    return (
        stem.lower() in ABBREVIATIONS
        or (len(stem) == 1 and stem.isalpha())
        or DOTTED_ACRONYM.match(core) is not None
    )


def ends_sentence(token: str, next_token: str | None) -> bool:
    """Tell whether a sentence ends after a raw token.

    It does when the token, without closing quotes and brackets, ends in ".", "?" or "!", is not an
    abbreviation (see `is_abbreviation`), and the next token, without opening quotes and brackets, starts with
    an upper-case letter or a digit; the last token of a document always ends a sentence.

    Parameters
    ----------
    token : str
        The raw token.
    next_token : str or None
        The raw token that follows, or None at the end of the document.

    Returns
    -------
    bool
        True if a sentence boundary follows `token`.
    """
    if next_token is None:
        return True
    core = _strip_closers(token)
    if not core or core[-1] not in SENTENCE_END or is_abbreviation(token):
        return False
    start = _strip_openers(next_token)
    return bool(start) and (start[0].isupper() or start[0].isdigit())


def split_sentences(document: str) -> list[list[str]]:
    """Split a document into sentences of raw (whitespace-delimited, not yet tokenized) tokens.

    Parameters
    ----------
    document : str
        Running text, such as one paragraph.

    Returns
    -------
    list of list of str
        The sentences, each a list of raw tokens; empty for a document with no tokens.
    """
    raw = document.split()
    sentences: list[list[str]] = []
    current: list[str] = []
    for i, token in enumerate(raw):
        current.append(token)
        if ends_sentence(token, raw[i + 1] if i + 1 < len(raw) else None):
            sentences.append(current)
            current = []
    return sentences


def _split_clitic(core: str) -> list[str]:
    """Split an English clitic off the end of a word ("don't" -> "do", "n't")."""
    match = CLITIC.match(core)
    if match is None:
        return [core]
    return [match.group(1), match.group(2)]


def tokenize_token(token: str, sentence_final: bool) -> list[str]:
    """Split one raw token into words: leading punctuation, the core (clitics split off), trailing punctuation.

    Parameters
    ----------
    token : str
        A raw, whitespace-delimited token.
    sentence_final : bool
        Whether the token is the last of its sentence; only then is a final "." split off as a word.

    Returns
    -------
    list of str
        The words, in order; a token of one character is returned whole.

    Examples
    --------
    >>> tokenize_token("(Sydney's,", sentence_final=False)
    ['(', 'Sydney', "'s", ',']
    >>> tokenize_token("don't.", sentence_final=True)
    ['do', "n't", '.']
    """
    leading: list[str] = []
    while len(token) > 1 and token[0] in OPENERS and not (token[0] == "'" and token[1].isdigit()):
        leading.append(token[0])
        token = token[1:]
    trailing: list[str] = []
    while len(token) > 1:
        if token.endswith(ELLIPSIS) and token != ELLIPSIS:
            trailing.append(ELLIPSIS)
            token = token[: -len(ELLIPSIS)]
        elif token[-1] in CLOSERS or (sentence_final and token[-1] == "." and token != ELLIPSIS):
            trailing.append(token[-1])
            token = token[:-1]
        else:
            break
    return [*leading, *_split_clitic(token), *reversed(trailing)]


def tokenize_sentence(raw_tokens: list[str]) -> list[str]:
    """Tokenize one sentence given as raw whitespace-delimited tokens.

    Parameters
    ----------
    raw_tokens : list of str
        The sentence's raw tokens, as produced by `split_sentences`; the last one is treated as sentence-final.

    Returns
    -------
    list of str
        The sentence's words.
    """
    last = len(raw_tokens) - 1
    words: list[str] = []
    for i, token in enumerate(raw_tokens):
        words.extend(tokenize_token(token, sentence_final=i == last))
    return words


def tokenize_document(document: str) -> list[list[str]]:
    """Split a paragraph of running text into tokenized sentences.

    Parameters
    ----------
    document : str
        Running text, such as one paragraph (one line of the built-in corpus).

    Returns
    -------
    list of list of str
        The sentences, each a list of words.
    """
    return [tokenize_sentence(raw) for raw in split_sentences(document)]
