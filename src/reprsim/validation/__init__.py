"""Validation of the measures: published sanity checks reproduced on networks trained here.

- Section 1 (`reprsim.validation.seeds`): identifying corresponding layers of networks that differ only in
  their seed (Kornblith et al. 2019, Table 2).
- Section 2 (`reprsim.validation.sensitivity`): similarity to a layer as its principal components are
  deleted, against the seed-to-seed noise floor (Ding et al. 2021).
- Section 3 (`reprsim.validation.findings`): findings a study of real models should show, computed from its
  results table; `reprsim.validation.real_models` runs that study on the packaged models with a MiniLM
  fine-tuned here (`reprsim.validation.finetune`).
- Section 4 (`reprsim.validation.depth_alignment`): Wolfram & Schein's claim 2 at small scale, with one row
  per text and mutual k-NN: each layer's best match in another model lies at a similar relative depth.

`run_validation` (`reprsim.validation.run`) ties sections 1 and 2 together over the networks trained by
`reprsim.validation.train`; ``reprsim validate`` runs all four.
"""

from reprsim.validation.depth_alignment import (
    DepthAlignmentConfig,
    DepthAlignmentResult,
    DepthModel,
    run_depth_alignment,
    write_depth_alignment,
)
from reprsim.validation.findings import StudyDesign, StudyFindings, study_findings
from reprsim.validation.findings_report import findings_markdown
from reprsim.validation.finetune import FinetuneConfig, FinetunedModel, finetune_word_order
from reprsim.validation.real_models import RealModel, RealModelsConfig, RealModelsResult, run_real_models
from reprsim.validation.run import (
    LMSetting,
    MLPSetting,
    ValidationConfig,
    ValidationResult,
    run_validation,
    write_outputs,
)
from reprsim.validation.seeds import (
    cross_seed_table,
    identification_accuracy,
    identification_hits,
    same_layer_similarity,
)
from reprsim.validation.sensitivity import delete_components, deletion_curves, sensitivity_summary
from reprsim.validation.specs import KORNBLITH_TABLE2, MeasureSpec, representation_measures
from reprsim.validation.train import (
    LMConfig,
    MLPConfig,
    TrainedNetwork,
    deterministic_torch,
    load_digits_split,
    split_lm_sentences,
    train_digits_mlp,
    train_word_lm,
)

__all__ = [
    "KORNBLITH_TABLE2",
    "DepthAlignmentConfig",
    "DepthAlignmentResult",
    "DepthModel",
    "FinetuneConfig",
    "FinetunedModel",
    "LMConfig",
    "LMSetting",
    "MLPConfig",
    "MLPSetting",
    "MeasureSpec",
    "RealModel",
    "RealModelsConfig",
    "RealModelsResult",
    "StudyDesign",
    "StudyFindings",
    "TrainedNetwork",
    "ValidationConfig",
    "ValidationResult",
    "cross_seed_table",
    "delete_components",
    "deletion_curves",
    "deterministic_torch",
    "findings_markdown",
    "finetune_word_order",
    "identification_accuracy",
    "identification_hits",
    "load_digits_split",
    "representation_measures",
    "run_depth_alignment",
    "run_real_models",
    "run_validation",
    "same_layer_similarity",
    "sensitivity_summary",
    "split_lm_sentences",
    "study_findings",
    "train_digits_mlp",
    "train_word_lm",
    "write_depth_alignment",
    "write_outputs",
]
