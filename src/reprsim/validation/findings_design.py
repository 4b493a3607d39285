"""What the models of a study are: families, untrained random controls and fine-tuned copies, by display name.

A `StudyDesign` is given in code or read from YAML (`StudyDesign.from_yaml`); the section 3 findings
(`reprsim.validation.findings.study_findings`) are computed from a results table and a design.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class StudyDesign:
    """What the models of a study are, by display name.

    Attributes
    ----------
    families : mapping of str to str, default {}
        Model -> family (e.g. ``"bert"``, ``"gpt2"``). When given, every real model that is not fine-tuned
        needs one.
    random_controls : mapping of str to str, default {}
        Untrained control -> the real model it is a randomly initialised copy of.
    finetuned : mapping of str to str, default {}
        Fine-tuned model -> its base model.
    """

    families: Mapping[str, str] = field(default_factory=dict)
    random_controls: Mapping[str, str] = field(default_factory=dict)
    finetuned: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path) -> StudyDesign:
        """Read a design from a YAML file with ``families``, ``random_controls`` and ``finetuned`` mappings.

        Parameters
        ----------
        path : str or Path
            The YAML file; each of the three keys is optional, and an empty file is an empty design.

        Returns
        -------
        StudyDesign
            The design.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If the document is not a mapping, has another key, or a value is not a mapping of names to
            names.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"study design file {str(path)!r} does not exist")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{str(path)!r}: expected a mapping with families/random_controls/finetuned")
        unknown = set(loaded) - {"families", "random_controls", "finetuned"}
        if unknown:
            raise ValueError(f"{str(path)!r}: unknown key(s) {sorted(unknown)}")
        parts = {}
        for key in ("families", "random_controls", "finetuned"):
            value = loaded.get(key) or {}
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ValueError(f"{str(path)!r}: {key} must map model names to names")
            parts[key] = dict(value)
        return cls(**parts)

    def real_models(self, models: Sequence[str]) -> list[str]:
        """Keep the models that are not random controls, in the given order.

        Parameters
        ----------
        models : sequence of str
            Model names.

        Returns
        -------
        list of str
            The real models.
        """
        return [m for m in models if m not in self.random_controls]

    def family_models(self, models: Sequence[str]) -> list[str]:
        """Keep the models the family contrast is about: neither random controls nor fine-tuned copies.

        A fine-tuned copy of a family member would count its own base as a family neighbour.

        Parameters
        ----------
        models : sequence of str
            Model names.

        Returns
        -------
        list of str
            The family models, in the given order.
        """
        return [m for m in self.real_models(models) if m not in self.finetuned]
