"""Section 4's numbers: mutual k-NN of every layer pair, each layer's best match, and the claim's summary.

Pure functions on arrays and tables (no extraction, no files): `layer_pair_table` compares every layer of every
model with every layer of every later one, `best_match_table` and `depth_summary` turn those pairs into the
numbers that test Wolfram & Schein's claim 2 (see `reprsim.validation.depth_alignment`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

PAIR_COLUMNS = ["model_a", "layer_a", "depth_a", "model_b", "layer_b", "depth_b", "mutual_knn"]
SUMMARY_COLUMNS = [
    "model_a", "model_b", "rows_a", "rows_b", "layers_a", "layers_b", "texts", "k", "spearman",
    "mean_depth_offset", "best_in_band", "band", "band_mean", "off_band_mean", "chance", "band_over_chance",
]


def relative_depths(layer_ids: Sequence[int]) -> np.ndarray:
    """Relative depth of each layer: layer / depth, 0 for the embeddings and 1 for the last block.

    Parameters
    ----------
    layer_ids : sequence of int
        Every layer of a model, 0 .. depth.

    Returns
    -------
    numpy.ndarray
        float64 depths in [0, 1].

    Raises
    ------
    ValueError
        If the layers are not 0 .. depth with depth >= 1.
    """
    layers = np.asarray(layer_ids, dtype=np.int64)
    if layers.size < 2 or not np.array_equal(layers, np.arange(layers.size)):
        raise ValueError(f"relative depths need every layer 0 .. depth (depth >= 1), got {list(layer_ids)}")
    return layers / float(layers[-1])


def layer_pair_table(representations: Mapping[str, Sequence[np.ndarray]], k: int) -> pd.DataFrame:
    """Mutual k-NN of every layer of every model with every layer of every later model.

    Parameters
    ----------
    representations : mapping of str to sequence of numpy.ndarray
        Per model (in order), its layers 0 .. depth, each n x width with the same n rows (texts).
    k : int
        Neighbours.

    Returns
    -------
    pandas.DataFrame
        PAIR_COLUMNS, one row per layer pair of each unordered model pair.
    """
    from reprsim.measures import mutual_knn

    names = list(representations)
    records = []
    for i, a in enumerate(names):
        depth_a = relative_depths(range(len(representations[a])))
        for b in names[i + 1 :]:
            depth_b = relative_depths(range(len(representations[b])))
            for la, xa in enumerate(representations[a]):
                for lb, xb in enumerate(representations[b]):
                    value = mutual_knn(xa, xb, k=k, max_rows=None)
                    records.append((a, la, depth_a[la], b, lb, depth_b[lb], value))
    return pd.DataFrame(records, columns=PAIR_COLUMNS)


def both_directions(pairs: pd.DataFrame) -> pd.DataFrame:
    """Each unordered model pair's rows, plus the same rows with A and B swapped (mutual k-NN is symmetric).

    Parameters
    ----------
    pairs : pandas.DataFrame
        PAIR_COLUMNS.

    Returns
    -------
    pandas.DataFrame
        PAIR_COLUMNS, every ordered model pair.
    """
    swapped = pairs.rename(columns={
        "model_a": "model_b", "layer_a": "layer_b", "depth_a": "depth_b",
        "model_b": "model_a", "layer_b": "layer_a", "depth_b": "depth_a",
    })
    return pd.concat([pairs, swapped[PAIR_COLUMNS]], ignore_index=True)


def best_match_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """For each ordered model pair (A, B) and layer of A, the layer of B with the highest mutual k-NN.

    Ties go to the shallower layer of B.

    Parameters
    ----------
    pairs : pandas.DataFrame
        PAIR_COLUMNS (each unordered pair once, or both directions).

    Returns
    -------
    pandas.DataFrame
        Columns model_a, model_b, layer_a, depth_a, best_layer_b, best_depth_b, mutual_knn.
    """
    ordered = both_directions(pairs).drop_duplicates(["model_a", "layer_a", "model_b", "layer_b"])
    ordered = ordered.sort_values(["model_a", "model_b", "layer_a", "layer_b"], kind="stable")
    best = ordered.loc[ordered.groupby(["model_a", "model_b", "layer_a"], sort=False)["mutual_knn"].idxmax()]
    best = best.rename(columns={"layer_b": "best_layer_b", "depth_b": "best_depth_b"})
    columns = ["model_a", "model_b", "layer_a", "depth_a", "best_layer_b", "best_depth_b", "mutual_knn"]
    return best[columns].reset_index(drop=True)


def depth_spearman(depths: np.ndarray, best_depths: np.ndarray) -> float:
    """Spearman correlation of layers' relative depths and their best matches' relative depths.

    Parameters
    ----------
    depths, best_depths : numpy.ndarray
        Per layer of A, its relative depth and its best match's in B.

    Returns
    -------
    float
        The correlation; NaN when every best match lies at one depth (no ranking to correlate).
    """
    if np.ptp(best_depths) == 0 or np.ptp(depths) == 0:
        return float("nan")
    return float(spearmanr(depths, best_depths).statistic)


def depth_summary(pairs: pd.DataFrame, texts: int, k: int, band: float, rows: Mapping[str, str]) -> pd.DataFrame:
    """The claim's numbers per ordered model pair.

    Parameters
    ----------
    pairs : pandas.DataFrame
        PAIR_COLUMNS.
    texts : int
        Rows (texts) each mutual k-NN was computed on: the chance level is k / (texts - 1).
    k : int
        Neighbours.
    band : float
        Half-width of the diagonal band in relative depth.
    rows : mapping of str to str
        Each model's text-level rows rule.

    Returns
    -------
    pandas.DataFrame
        SUMMARY_COLUMNS: spearman (of the depths of each layer of A and of its best match in B),
        mean_depth_offset (mean |depth_a - best depth_b|), best_in_band (share of A's layers whose best match
        lies in the band), band_mean and off_band_mean (mean mutual k-NN on and off the band), chance
        (k / (texts - 1)) and band_over_chance.
    """
    ordered = both_directions(pairs).drop_duplicates(["model_a", "layer_a", "model_b", "layer_b"])
    best = best_match_table(pairs)
    chance = k / (texts - 1)
    records = []
    for (a, b), group in ordered.groupby(["model_a", "model_b"], sort=False):
        matches = best[(best.model_a == a) & (best.model_b == b)]
        offset = (matches.depth_a - matches.best_depth_b).abs().to_numpy()
        on_band = (group.depth_a - group.depth_b).abs() <= band + 1e-12
        band_mean = float(group.mutual_knn[on_band].mean())
        records.append({
            "model_a": a, "model_b": b, "rows_a": rows[a], "rows_b": rows[b],
            "layers_a": int(group.layer_a.nunique()), "layers_b": int(group.layer_b.nunique()),
            "texts": texts, "k": k,
            "spearman": depth_spearman(matches.depth_a.to_numpy(), matches.best_depth_b.to_numpy()),
            "mean_depth_offset": float(offset.mean()), "best_in_band": float((offset <= band + 1e-12).mean()),
            "band": band, "band_mean": band_mean,
            "off_band_mean": float(group.mutual_knn[~on_band].mean()) if (~on_band).any() else float("nan"),
            "chance": chance, "band_over_chance": band_mean / chance,
        })
    return pd.DataFrame(records, columns=SUMMARY_COLUMNS)
