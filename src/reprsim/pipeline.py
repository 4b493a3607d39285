"""One command end to end, from a `reprsim.study.Study`: corpus -> extraction -> all-pairs comparison -> report.

Every model is checked first (`reprsim.extraction.models.check_loadable`), so that one that cannot be loaded
stops the run before anything is extracted or written. Every step skips finished work: complete store entries
are reused, rows already in the results file are kept, and the report is redrawn only when the results table
(or what else the report shows) changed, so re-running a study (or adding a model to it) costs only what is
new.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprsim.corpus import Corpus
from reprsim.results import ResultTable
from reprsim.study import Study

# Beside the report's index.html: the fingerprint of the table and options it was drawn from.
REPORT_SOURCE_RECORD = "report-source.json"
REPORT_INDEX = "index.html"  # the page `reprsim.report.write_report` writes


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
    new_entries : int, default 0
        The store entries extracted (or finished) by this run; the others were complete already.
    table_changed : bool, default True
        Whether the results table differs from the one the run started from (False: nothing new computed).
    report_redrawn : bool, default True
        Whether the report was drawn; False when it already showed this very table.
    """

    results: Path
    report: Path | None
    n_rows: int
    new_entries: int = 0
    table_changed: bool = True
    report_redrawn: bool = True

    @property
    def nothing_new(self) -> bool:
        """True when the run extracted nothing and the results table is unchanged."""
        return self.new_entries == 0 and not self.table_changed


def _load_corpus(study: Study) -> Corpus:
    """Load the study's corpus with its sentence and word limits."""
    return Corpus.load(study.corpus.source, n=study.corpus.max_sentences, max_words=study.corpus.max_words)


def check_models(study: Study) -> None:
    """Check that every model of a study can be loaded, without loading any weights.

    Parameters
    ----------
    study : Study
        A validated study.

    Raises
    ------
    FileNotFoundError
        If any model cannot be loaded (a preset's package missing, a folder without config or weights, a hub
        id not in the local cache while downloads are off); the one-line message names every such model by
        its ``models[i]`` key and name, with what to do.
    """
    from reprsim.extraction.models import check_loadable

    problems = []
    for i, model in enumerate(study.models):
        try:
            check_loadable(model.model, model.trust_remote_code)
        except FileNotFoundError as err:
            problems.append(f"`models[{i}]` ({model.name!r}): {err}")
    if problems:
        count = "a model" if len(problems) == 1 else f"{len(problems)} models"
        raise FileNotFoundError(
            f"study {study.name!r}: {count} cannot be loaded, so nothing was extracted: {'; '.join(problems)}"
        )


def table_fingerprint(table: ResultTable, **report_options: Any) -> str:
    """Fingerprint a results table's rows and provenance, with the options a report of it is drawn with.

    Parameters
    ----------
    table : ResultTable
        The results table.
    **report_options
        JSON-able values the report also depends on (title, fine-tuning comparisons, versions).

    Returns
    -------
    str
        A sha256, hex: equal for equal tables drawn with equal options.
    """
    digest = hashlib.sha256(table.frame.to_csv(index=False).encode("utf-8"))
    extra = {"provenance": table.provenance, "options": report_options}
    digest.update(json.dumps(extra, sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()


def report_is_current(report_dir: Path, fingerprint: str) -> bool:
    """Tell whether a report folder holds a page drawn from the table and options of `fingerprint`.

    Parameters
    ----------
    report_dir : Path
        The report folder.
    fingerprint : str
        See `table_fingerprint`.

    Returns
    -------
    bool
        True when its ``index.html`` exists and its record names this fingerprint.
    """
    try:
        record = json.loads((report_dir / REPORT_SOURCE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("sha256") == fingerprint and (report_dir / REPORT_INDEX).is_file()


def _write_report_record(report_dir: Path, fingerprint: str, results: Path) -> None:
    """Record which table the report was drawn from (after the page: a half-drawn report has no record)."""
    record = {"sha256": fingerprint, "results": str(results)}
    (report_dir / REPORT_SOURCE_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def run_study(study: Study, progress: bool = True, command: str | None = None) -> StudyOutputs:
    """Run a validated study: check the models, extract each, compare all pairs, save the results, report.

    Every model is checked before any is extracted (`check_models`): when one cannot be loaded, the run stops
    with the store, results and report untouched. Every step skips finished work: a complete store entry
    with the same options is reused, the rows already in the results file are kept (only while they come
    from the store entries compared now), and the report is left as it is when its record
    (``report-source.json``) shows it was drawn from the same table with the same options. Only the entries
    of this study's own options are compared, not other entries of the same names left in the store.

    Parameters
    ----------
    study : Study
        A validated study (see `reprsim.study.load_study`).
    progress : bool, default True
        Show progress bars.
    command : str, optional
        The command line that ran the study, shown in the report's run details.

    Returns
    -------
    StudyOutputs
        Where the results and the report were written, and the results' row count.

    Raises
    ------
    FileNotFoundError
        If a model cannot be loaded (see `check_models`), or the corpus file (or gensim, for the built-in
        corpus) is missing.
    ValueError
        If the corpus cannot be read or limited as asked, extraction fails on a sentence or word, or the
        store, results file or report cannot be written; the message names the problem.
    """
    from reprsim import __version__
    from reprsim.comparison import compare
    from reprsim.extraction import extract
    from reprsim.extraction.extract import task_arguments
    from reprsim.report import write_report
    from reprsim.store import ActivationStore

    check_models(study)  # before the store is even created
    corpus = _load_corpus(study)
    store = ActivationStore(study.store)
    complete_before = {key for key in store.keys() if store.has_complete(key)}
    ex = study.extraction
    # The entries of this study's options, not older ones of the same name left in the store.
    arguments: list[dict[str, Any]] = [
        task_arguments(layers=None if layers == "all" else layers, subword=ex.subword, attention=ex.attention,
                       causal_attention=ex.causal_attention, batch_size=ex.batch_size, device=ex.device,
                       dtype=ex.dtype, long_sentences=ex.long_sentences, rows=ex.rows,
                       trust_remote_code=model.trust_remote_code)
        for model in study.models
        for layers in [model.layers if model.layers is not None else ex.layers]
    ]
    if ex.backend == "ray":
        from reprsim.extraction.extract import extraction_task
        from reprsim.extraction.on_ray import extract_on_ray

        keys = extract_on_ray([m.model for m in study.models], [m.name for m in study.models], corpus,
                              str(store.path.resolve()), arguments, address=ex.address, task=extraction_task,
                              gpus_per_model=ex.gpus_per_model, progress=progress, corpus_shards=ex.corpus_shards)
    else:
        keys = [extract([model.model], corpus, store, names=[model.name], progress=progress, **kwargs)[0].key
                for model, kwargs in zip(study.models, arguments, strict=True)]
    previous = ResultTable.load(study.results) if study.results.exists() else None
    cmp = study.compare
    table = compare(
        store, measures=cmp.measures, models=keys, previous=previous,
        device=cmp.device, chunk_rows=cmp.chunk_rows, subsample_rows=cmp.subsample_rows,
        attention_sentences=cmp.attention_sentences, seed=cmp.seed, progress=progress,
        backend=cmp.backend, address=cmp.address, shards=cmp.shards, space=cmp.space, precision=cmp.precision,
        **cmp.inference_arguments(),
    )
    table_changed = previous is None or table_fingerprint(table) != table_fingerprint(previous)
    if table_changed:
        study.results.parent.mkdir(parents=True, exist_ok=True)
        table.save(study.results)
    report, redrawn = None, False
    if study.report is not None:
        finetuned = {f.base: f.finetuned for f in study.finetuning}
        title = f"reprsim: {study.name}"
        fingerprint = table_fingerprint(table, title=title, finetuned=finetuned, reprsim=__version__)
        if report_is_current(study.report, fingerprint):
            report = study.report / REPORT_INDEX
        else:
            report = write_report(table, study.report, finetuned=finetuned or None, title=title, progress=progress,
                                  command=command)
            _write_report_record(study.report, fingerprint, study.results)
            redrawn = True
    return StudyOutputs(
        results=study.results,
        report=report,
        n_rows=len(table),
        new_entries=len(set(keys) - complete_before),
        table_changed=table_changed,
        report_redrawn=redrawn,
    )
