r"""Readers for corpus files: plain text (one sentence per line) and CoNLL-U.

Files are read as bytes and decoded line by line so that a non-UTF-8 byte is reported with its file, line and
byte offset. Lines are split on `\n` only (a trailing `\r` is removed), never on the other Unicode line
breaks, so line numbers match what an editor shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from reprsim.corpus.text import clean_sentence, clean_word, normalize_text

UTF8_BOM = b"\xef\xbb\xbf"


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    r"""Read a UTF-8 file line by line, with line numbers.

    A leading UTF-8 byte-order mark is skipped, lines are split on `\n` only and a trailing `\r` is removed
    from each; blank lines at the end of the file (and the final newline) are not yielded.

    Parameters
    ----------
    path : str or Path
        The file to read.

    Yields
    ------
    tuple of (int, str)
        The 1-based line number and the decoded line, without its line ending.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the path is a folder; if the file is empty (or only whitespace); if a line holds bytes that are not
        UTF-8 (the message names the file, the line, the byte and its offset from the start of the file); or
        if a line holds a carriage return inside it (old Mac line endings).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"corpus path is a folder, not a file: {path}")
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"corpus file is empty: {path}")
    offset = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    lines = data[offset:].split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()  # blank lines at the end of the file (and the final newline) start no sentence
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{path}: line {number}: invalid UTF-8 byte 0x{raw[exc.start]:02x} at byte offset "
                f"{offset + exc.start} of the file (column {exc.start + 1} of the line, in bytes)"
            ) from None
        offset += len(raw) + 1
        text = text.removesuffix("\r")
        if "\r" in text:
            raise ValueError(
                f"{path}: line {number} has a carriage return inside it: the file seems to use old Mac (CR) line "
                "endings; convert them to \\n (one sentence per line)"
            )
        yield number, text


def read_text(path: str | Path, *, skip_empty: bool = False) -> list[list[str]]:
    """Read a plain-text corpus: one sentence per line, words separated by whitespace.

    Each line is normalised to NFC before it is split, and each word is cleaned (see `reprsim.corpus.text`).

    Parameters
    ----------
    path : str or Path
        The UTF-8 text file.
    skip_empty : bool, default False
        Skip lines with no words instead of raising.

    Returns
    -------
    list of list of str
        The sentences, one per (non-skipped) line.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If a line has no words (blank, or only characters that cleaning removes), naming the file and line,
        unless `skip_empty` is set; if no sentence is left; or if the file cannot be read (see `read_lines`).
    """
    sentences: list[list[str]] = []
    for number, line in read_lines(path):
        words = clean_sentence(normalize_text(line).split())
        if not words:
            if skip_empty:
                continue
            raise ValueError(
                f"{path}: line {number} is empty (no words); remove it, or pass skip_empty=True "
                "(reprsim extract --skip-empty-lines)"
            )
        sentences.append(words)
    if not sentences:
        raise ValueError(f"corpus file has no sentences: {path}")
    return sentences


# "1-2": a multiword token (its parts follow); "1.1": an empty node (no surface form). Both are skipped.
_SKIPPED_ID = re.compile(r"^[0-9]+(-[0-9]+|\.[0-9]+)$")


def _conllu_form(path: str | Path, number: int, line: str) -> str | None:
    """Return a token line's FORM, normalised and cleaned, or None for multiword ranges and empty nodes."""
    columns = line.split("\t")
    if len(columns) < 2:
        raise ValueError(f"{path}: line {number}: not a CoNLL-U token line (expected tab-separated columns)")
    token_id = columns[0]
    if _SKIPPED_ID.match(token_id):
        return None
    if not (token_id.isascii() and token_id.isdigit()):
        raise ValueError(f"{path}: line {number}: CoNLL-U ID {token_id!r} is not a word index (1, 2, ...)")
    form = columns[1]
    word = clean_word(normalize_text(form))
    if not word.strip():
        # Dropping it would shift every later word of the sentence against the file's token IDs.
        raise ValueError(
            f"{path}: line {number}: token {token_id} has FORM {form!r}, which is empty once control, format "
            "and zero-width characters are removed; fix or remove the token"
        )
    return word


def read_conllu(path: str | Path) -> list[list[str]]:
    """Read the FORM column of a CoNLL-U file.

    Sentences are separated by blank lines and "#" lines are comments. Multiword-token lines ("1-2") and empty
    nodes ("1.1") are skipped, so the words are the syntactic tokens. Each FORM is normalised to NFC and
    cleaned (see `reprsim.corpus.text`).

    Parameters
    ----------
    path : str or Path
        The UTF-8 CoNLL-U file.

    Returns
    -------
    list of list of str
        The sentences' words, in file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If a token line has fewer than two tab-separated columns or an ID that is not a word index; if a
        token's FORM is empty once cleaned (dropping it would shift later words against the token IDs); if
        the file has no sentences; or if it cannot be read (see `read_lines`). Each message names the file
        and, where there is one, the line.
    """
    sentences: list[list[str]] = []
    words: list[str] = []
    for number, line in [*read_lines(path), (-1, "")]:  # a sentinel blank line closes the last sentence
        if line.startswith("#"):
            continue
        if not line.strip():
            if words:
                sentences.append(words)
                words = []
            continue
        word = _conllu_form(path, number, line)
        if word is not None:
            words.append(word)
    if not sentences:
        raise ValueError(f"CoNLL-U file has no sentences: {path}")
    return sentences
