"""`reprsim extract MODEL [MODEL ...] --corpus SOURCE --store DIR`: word-level activations into a store."""

from __future__ import annotations

import argparse
from pathlib import Path

from reprsim.cli import add_quiet, command_parser, int_at_least


def run(args: argparse.Namespace) -> int:
    """Extract each model over the corpus into the store and print one line per entry.

    ``--max-words`` drops long sentences before ``--max-sentences`` keeps the first N.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim extract`` options.

    Returns
    -------
    int
        0.

    Raises
    ------
    ValueError
        If ``--name`` is given a different number of times than there are models, or the corpus or a model
        cannot be read or extracted (see `reprsim.extraction.extract`).
    FileNotFoundError
        If the corpus file is missing.
    """
    from reprsim.corpus import Corpus
    from reprsim.extraction import extract
    from reprsim.store import ActivationStore

    if args.name is not None and len(args.name) != len(args.models):
        raise ValueError(f"--name was given {len(args.name)} times for {len(args.models)} models")
    corpus = Corpus.load(args.corpus, skip_empty=args.skip_empty_lines)
    if args.max_words is not None:
        corpus = corpus.drop_longer_than(args.max_words)
    store = ActivationStore(args.store)
    entries = extract(
        args.models,
        corpus,
        store,
        layers=args.layers,
        subword=args.subword,
        attention=False if args.no_attention else None,  # None: maps for word rows, none for text rows
        causal_attention=args.causal_attention,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        max_sentences=args.max_sentences,
        long_sentences=args.long_sentences,
        names=args.name,
        trust_remote_code=args.trust_remote_code,
        progress=not args.quiet,
        rows=args.rows,
        backend=args.backend,
        address=args.address,
        gpus_per_model=args.gpus_per_model,
        corpus_shards=args.corpus_shards,
    )
    for entry in entries:
        attention = "with attention" if entry.has_attention else "no attention"
        print(
            f"{entry.name}: {entry.n_sentences} sentences, "
            f"{f'{entry.n_words} words' if entry.rows == 'word' else f'one {entry.rows} row each'}, layers "
            f"{','.join(map(str, entry.layer_ids))}, {attention} -> {store.path / entry.key}"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extract`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `reprsim.cli.build_parser`).
    """
    parser = command_parser(
        subparsers,
        "extract",
        help="run models over a corpus and store word-level activations (resumable)",
        description=(
            "Run each MODEL (a preset: minilm, smollm2, gemma3-270m, mpnet, or <preset>-random; a Hugging "
            "Face id; or a local model folder) over the corpus and store one vector per word per layer, "
            "plus word-level attention maps, in the activation store. Complete entries are skipped; an "
            "interrupted run resumes where it stopped."
        ),
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="preset, hub id or model folder")
    parser.add_argument("--corpus", required=True, help="'builtin', a plain-text file or a .conllu file")
    parser.add_argument(
        "--store", required=True, type=Path, help="activation store folder (created if missing)"
    )
    parser.add_argument(
        "--layers", default=None, help="comma-separated layer indices (0 = embeddings) or 'all'"
    )
    parser.add_argument(
        "--subword",
        choices=("last", "first", "mean"),
        default="last",
        help="which subword tokens make a word's vector",
    )
    parser.add_argument(
        "--rows",
        choices=("word", "last-token", "mean", "first-token"),  # reprsim.extraction.ROW_RULES (kept import-light)
        default="word",
        help="one row per word, or one per sentence: its last token, the mean of its tokens, or its first token "
        "(an encoder's [CLS]); sentence rows store no attention",
    )
    parser.add_argument("--no-attention", action="store_true", help="store no attention maps")
    parser.add_argument(
        "--causal-attention",
        action="store_true",
        help="mask attention to earlier words and renormalise (compare encoders with decoders)",
    )
    parser.add_argument("--batch-size", type=int_at_least(1), default=32, help="sentences per forward pass")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when torch sees a GPU)")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        default="float32",
        help="model and storage precision",
    )
    parser.add_argument("--max-sentences", type=int_at_least(1), default=None, help="use the first N sentences")
    parser.add_argument(
        "--skip-empty-lines", action="store_true", help="skip lines with no words in a text corpus (else an error)"
    )
    parser.add_argument(
        "--max-words",
        type=int_at_least(1),
        default=None,
        help="drop sentences longer than K words (before --max-sentences)",
    )
    parser.add_argument(
        "--long-sentences",
        choices=("error", "window"),
        default="error",
        help="sentences over a model's context: an error, or overlapping windows",
    )
    parser.add_argument(
        "--name",
        action="extend",
        nargs="+",
        default=None,
        metavar="NAME",
        help="display names, one per model in order (--name a b or --name a --name b)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow models whose code comes with their weights (off by default)",
    )
    g = parser.add_argument_group("scaling out (docs: guide/scaling)")
    g.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="run the models here one after another, or one Ray actor per model")
    g.add_argument("--address", default=None, help="the Ray cluster (`ray start --head` prints it; default: local)")
    g.add_argument("--gpus-per-model", type=float, default=None,
                   help="GPUs each Ray actor declares (default: 1 when the cluster has GPUs, else 0)")
    g.add_argument("--corpus-shards", type=int, default=1,
                   help="on Ray, one actor per model and corpus shard (runs of whole 256-sentence windows), the "
                        "parts then joined into the model's entry")
    add_quiet(parser, "no progress bars (transformers' weight-loading bar included)")
    parser.set_defaults(func=run)
