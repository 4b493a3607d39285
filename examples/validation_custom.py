"""Run the layer-identification and component-deletion checks of `reprsim validate` on a configuration of your own.

Three small MLPs trained on scikit-learn's digits from seeds 0, 1 and 2, three measures; the outputs (CSV,
Markdown, figures) go to `validation-custom/` in the current folder. Takes seconds on one core.
"""

from __future__ import annotations

from reprsim.validation import MLPConfig, MLPSetting, ValidationConfig, run_validation, write_outputs


def main() -> None:
    """Train the networks, score the measures and write the outputs."""
    config = ValidationConfig(
        preset="custom",
        seeds=(0, 1, 2),
        settings=(MLPSetting("digits-mlp", MLPConfig(hidden_layers=3, width=32, epochs=5)),),
        measures=("linear_cka", "svcca", "maxsim"),  # default: every representation-level measure
        deletion_points=5,
    )
    result = run_validation(config, progress=False)
    print(result.accuracy[["setting", "measure", "accuracy", "chance", "paper_accuracy"]])
    write_outputs(result, "validation-custom")


if __name__ == "__main__":
    main()
