"""The built-in English corpus: the Lee background corpus shipped in gensim's test data.

``lee_background.cor`` holds 300 Australian news articles (one article per line). It is read at run time from
the installed gensim wheel, without importing gensim (which is slow to import), and split into sentences and
words by `reprsim.corpus.tokenize`. Its text is never copied into reprsim.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from reprsim.corpus.loaders import read_lines
from reprsim.corpus.text import clean_sentence, normalize_text
from reprsim.corpus.tokenize import tokenize_document

BUILTIN_NAME = "lee-background"
BUILTIN_RELPATH = ("test", "test_data", "lee_background.cor")
GENSIM_PIN = "gensim==4.4.0"


def builtin_path() -> Path:
    """Locate ``lee_background.cor`` inside the installed gensim package, without importing gensim.

    Returns
    -------
    Path
        The corpus file inside gensim's ``test/test_data`` folder.

    Raises
    ------
    FileNotFoundError
        If gensim is not installed, or is installed without the file; the message says which version to
        install. (FileNotFoundError rather than ImportError: what is missing is the corpus file, and the CLI
        reports missing files cleanly.)
    """
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        # FileNotFoundError, not ImportError: what is missing is the corpus file (the CLI reports it cleanly).
        raise FileNotFoundError(
            f"the built-in corpus is read from gensim's test data, but gensim is not installed; "
            f"install it with: pip install {GENSIM_PIN}"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder).joinpath(*BUILTIN_RELPATH)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"gensim is installed but {'/'.join(BUILTIN_RELPATH)} is missing from it "
        f"(searched {list(spec.submodule_search_locations)}); reinstall with: pip install {GENSIM_PIN}"
    )


def builtin_source() -> str:
    """Describe where the built-in corpus comes from, independently of where gensim is installed.

    Returns
    -------
    str
        For example ``"gensim 4.4.0: gensim/test/test_data/lee_background.cor"``; the version is
        ``"unknown"`` when gensim's package metadata cannot be found.
    """
    try:
        version = importlib.metadata.version("gensim")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"gensim {version}: gensim/{'/'.join(BUILTIN_RELPATH)}"


def read_builtin() -> list[list[str]]:
    """Read the built-in corpus as tokenized sentences (about 2,600 sentences, 63,000 words).

    Each line (article) is normalised to NFC, split into sentences and words by
    `reprsim.corpus.tokenize.tokenize_document`, and cleaned; sentences left with no words are dropped.

    Returns
    -------
    list of list of str
        The sentences, in file order.

    Raises
    ------
    FileNotFoundError
        If gensim or its copy of the corpus file is missing (see `builtin_path`).
    """
    path = builtin_path()
    sentences: list[list[str]] = []
    for _, line in read_lines(path):
        for words in tokenize_document(normalize_text(line)):
            cleaned = clean_sentence(words)
            if cleaned:
                sentences.append(cleaned)
    return sentences
