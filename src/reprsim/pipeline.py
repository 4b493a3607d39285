"""One command end to end, from a `reprsim.study.Study`: corpus -> extraction -> all-pairs comparison -> report.

Every step skips finished work: complete store entries are reused, rows already in the results file are
kept, so re-running a study (or adding a model to it) costs only what is new.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reprsim.corpus import Corpus
from reprsim.study import Study


@dataclass(frozen=True)
class StudyOutputs:
    """What a study run wrote.

    Attributes
    ----------
    results : Path
        The results table file.
    report : Path or None
        The report's ``index.html``, or None when the study writes no report.
    n_rows : int
        The number of rows in the results table (kept rows included).
    """

    results: Path
    report: Path | None
    n_rows: int


def _load_corpus(study: Study) -> Corpus:
    """Load the study's corpus with its sentence and word limits."""
    return Corpus.load(study.corpus.source, n=study.corpus.max_sentences, max_words=study.corpus.max_words)


def run_study(study: Study, progress: bool = True) -> StudyOutputs:
    """Run a validated study: extract every model, compare all pairs, save the results, write the report.

    Every step skips finished work: a complete store entry with the same options is reused, and the rows
    already in the results file are kept (only while they come from the store entries compared now). Only
    the entries of this study's own options are compared, not other entries of the same names left in the
    store.

    Parameters
    ----------
    study : Study
        A validated study (see `reprsim.study.load_study`).
    progress : bool, default True
        Show progress bars.

    Returns
    -------
    StudyOutputs
        Where the results and the report were written, and the results' row count.

    Raises
    ------
    FileNotFoundError
        If the corpus file (or gensim, for the built-in corpus) is missing.
    ValueError
        If the corpus cannot be read or limited as asked, extraction fails on a sentence or word, or the
        store, results file or report cannot be written; the message names the problem.
    """
    from reprsim.comparison import compare
    from reprsim.extraction import extract
    from reprsim.report import write_report
    from reprsim.results import ResultTable
    from reprsim.store import ActivationStore

    corpus = _load_corpus(study)
    store = ActivationStore(study.store)
    ex = study.extraction
    keys = []  # the entries of this study's options, not older ones of the same name left in the store
    for model in study.models:
        layers = model.layers if model.layers is not None else ex.layers
        (entry,) = extract(
            [model.model], corpus, store,
            layers=None if layers == "all" else layers,
            subword=ex.subword, attention=ex.attention, causal_attention=ex.causal_attention,
            batch_size=ex.batch_size, device=ex.device, dtype=ex.dtype, long_sentences=ex.long_sentences,
            names=[model.name], trust_remote_code=model.trust_remote_code, progress=progress,
        )
        keys.append(entry.key)
    previous = ResultTable.load(study.results) if study.results.exists() else None
    cmp = study.compare
    table = compare(
        store, measures=cmp.measures, models=keys, previous=previous,
        device=cmp.device, chunk_rows=cmp.chunk_rows, subsample_rows=cmp.subsample_rows,
        attention_sentences=cmp.attention_sentences, seed=cmp.seed, progress=progress,
    )
    study.results.parent.mkdir(parents=True, exist_ok=True)
    table.save(study.results)
    report = None
    if study.report is not None:
        finetuned = {f.base: f.finetuned for f in study.finetuning}
        report = write_report(
            table, study.report, finetuned=finetuned or None, title=f"reprsim: {study.name}", progress=progress
        )
    return StudyOutputs(results=study.results, report=report, n_rows=len(table))
