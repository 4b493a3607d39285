"""What a validation run is: its settings and configuration (with the presets), and the tables it produces.

`ValidationConfig.preset_named` builds the presets: "full" (the documented numbers, < 45 min on 2 cores),
"quick" (~2 min) and "smoke" (seconds; for tests and CI). `ValidationResult` holds a run's tidy DataFrames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from reprsim.validation.specs import MeasureSpec, representation_measures
from reprsim.validation.train_digits import MLPConfig
from reprsim.validation.train_lm import LMConfig


@dataclass(frozen=True)
class MLPSetting:
    """Seeded digits classifiers of one shape.

    Attributes
    ----------
    name : str
        The setting's name in the results.
    config : MLPConfig
        The shape and schedule.
    """

    name: str
    config: MLPConfig


@dataclass(frozen=True)
class LMSetting:
    """Seeded word-level language models of one shape.

    Attributes
    ----------
    name : str
        The setting's name in the results.
    config : LMConfig
        The shape and schedule.
    """

    name: str
    config: LMConfig


Setting = MLPSetting | LMSetting


@dataclass(frozen=True)
class ValidationConfig:
    """Everything that determines a validation run (written beside the results as ``config.json``).

    Attributes
    ----------
    preset : str
        The preset's name (``"full"``, ``"quick"``, ``"smoke"``), or any label.
    seeds : tuple of int
        At least two distinct seeds; one network is trained per seed and setting.
    settings : tuple of MLPSetting or LMSetting
        At least one setting, with distinct names, run in order.
    max_rows : int, default 2000
        The row subsample of the measures that build n x n matrices.
    rbf_bandwidths : tuple of float, default (0.4, 0.8)
        The RBF CKA bandwidths, one spec each.
    deletion_points : int, default 14
        About how many component counts per layer in section 2.
    measures : tuple of str or None, default None
        The registry measures to validate; None for every representation-level measure.
    threads : int, default 1
        Torch CPU threads.

    Raises
    ------
    ValueError
        If there are fewer than two seeds, seeds repeat, or the settings are empty or share a name.
    """

    preset: str
    seeds: tuple[int, ...]
    settings: tuple[Setting, ...]
    max_rows: int = 2000
    rbf_bandwidths: tuple[float, ...] = (0.4, 0.8)
    deletion_points: int = 14
    measures: tuple[str, ...] | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"need at least 2 distinct seeds, got {self.seeds}")
        names = [s.name for s in self.settings]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"settings must be non-empty with distinct names, got {names}")

    @classmethod
    def preset_named(cls, name: str, threads: int = 1) -> ValidationConfig:
        """Build a preset configuration.

        Parameters
        ----------
        name : {"full", "quick", "smoke"}
            ``"full"``: 5 seeds, two digits MLPs (4 and 8 hidden layers) and a 6-layer LM, the documented
            numbers (under 45 minutes on 2 cores); ``"quick"``: 3 seeds, smaller networks (about 2 minutes);
            ``"smoke"``: 3 tiny networks per setting, seconds, for tests and CI.
        threads : int, default 1
            Torch CPU threads.

        Returns
        -------
        ValidationConfig
            The configuration.

        Raises
        ------
        ValueError
            If `name` is not a preset.
        """
        if name == "full":
            return cls(
                preset=name,
                seeds=(0, 1, 2, 3, 4),
                settings=(
                    MLPSetting("digits-mlp", MLPConfig(hidden_layers=4, width=128, epochs=30)),
                    MLPSetting("digits-mlp-deep", MLPConfig(hidden_layers=8, width=128, epochs=30)),
                    LMSetting("word-lm", LMConfig(n_layers=6, d_model=128, epochs=6, heldout_sentences=100)),
                ),
                max_rows=1500,
                deletion_points=14,
                threads=threads,
            )
        if name == "quick":
            return cls(
                preset=name,
                seeds=(0, 1, 2),
                settings=(
                    MLPSetting("digits-mlp", MLPConfig(hidden_layers=4, width=64, epochs=20)),
                    LMSetting("word-lm", LMConfig(n_layers=4, d_model=64, epochs=3, heldout_sentences=60)),
                ),
                max_rows=600,
                deletion_points=8,
                threads=threads,
            )
        if name == "smoke":
            return cls(
                preset=name,
                seeds=(0, 1, 2),
                settings=(
                    MLPSetting("digits-mlp", MLPConfig(hidden_layers=3, width=32, epochs=15)),
                    LMSetting("word-lm", LMConfig(n_layers=2, d_model=32, n_heads=2, epochs=1, heldout_sentences=20)),
                ),
                max_rows=300,
                deletion_points=6,
                threads=threads,
            )
        raise ValueError(f"unknown preset {name!r}; use full, quick or smoke")

    def specs(self) -> list[MeasureSpec]:
        """Build the specs of the measures to validate (see `reprsim.validation.representation_measures`).

        Returns
        -------
        list of MeasureSpec
            Every representation-level registry measure, or those of `measures`.
        """
        return representation_measures(self.rbf_bandwidths, self.max_rows, names=self.measures)


WARNING_COLUMNS: tuple[str, ...] = ("setting", "section", "measure", "warning", "count")


@dataclass
class ValidationResult:
    """All tables of a validation run; every frame has a ``setting`` column.

    Attributes
    ----------
    config : ValidationConfig
        The configuration run.
    networks : pandas.DataFrame
        One row per trained network: ``setting``, ``seed``, ``layers``, ``rows``, ``width``, ``metric``
        (its name) and ``value``.
    cross_seed : pandas.DataFrame
        Every measure between every layer pair of every two seeds (`reprsim.validation.cross_seed_table`).
    hits : pandas.DataFrame
        Layer identification per trial (`reprsim.validation.identification_hits`).
    accuracy : pandas.DataFrame
        Layer-identification accuracy (`reprsim.validation.identification_accuracy`).
    noise_floor : pandas.DataFrame
        Same-layer similarity across seeds (`reprsim.validation.same_layer_similarity`).
    curves : pandas.DataFrame
        Component-deletion curves of the first seed's network (`reprsim.validation.deletion_curves`).
    sensitivity : pandas.DataFrame
        Their summary (`reprsim.validation.sensitivity_summary`).
    warnings : pandas.DataFrame
        Warnings the measures raised: ``setting``, ``section``, ``measure``, ``warning``, ``count``.
    seconds : dict of str to float
        Wall time per step (training, identification, deletion) and setting.
    """

    config: ValidationConfig
    networks: pd.DataFrame
    cross_seed: pd.DataFrame
    hits: pd.DataFrame
    accuracy: pd.DataFrame
    noise_floor: pd.DataFrame
    curves: pd.DataFrame
    sensitivity: pd.DataFrame
    warnings: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
