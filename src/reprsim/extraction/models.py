"""Finding and loading transformers models: presets, local folders and Hugging Face hub names.

`resolve_model` is cheap (no weights are loaded): it says where a model comes from and what exact weights it
is, so the extraction driver can build the store key and skip finished work before loading anything.
`load_transformer` then builds the model and tokenizer.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reprsim.extraction.presets import (
    PRESETS,
    RANDOM_SEED,
    RANDOM_SUFFIX,
    cache_root,
    folder_sha256,
    preset_folder,
    preset_identity,
    split_random,
)

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are and which weights they hold.

    Parameters
    ----------
    spec : str
        What the user gave (a preset, a folder or a hub id).
    name : str
        A readable name of the model.
    kind : str
        "preset", "local" (a folder) or "hub" (a Hugging Face id, possibly cached offline).
    location : str
        The preset name, the folder, or the hub id.
    identity : dict
        JSON-able description of the exact weights (a sha256 of the files, or the hub commit), used in the
        store key.
    random_init : bool, default False
        Build the model's architecture with random weights (a preset's "-random" twin).
    """

    spec: str
    name: str
    kind: str
    location: str
    identity: dict[str, Any] = field(default_factory=dict)
    random_init: bool = False


def check_dtype(dtype: str) -> torch.dtype:
    """Check a model dtype name.

    Parameters
    ----------
    dtype : str
        "float32", "float16" or "bfloat16".

    Returns
    -------
    torch.dtype
        The torch dtype.

    Raises
    ------
    ValueError
        When the name is none of them.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return DTYPES[dtype]


def resolve_device(device: str) -> torch.device:
    """Resolve a device option.

    Parameters
    ----------
    device : str
        "cpu", "cuda", "cuda:N", or "auto" (CUDA when torch sees a GPU, else the CPU).

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    ValueError
        When the option is none of those, or CUDA is asked for and torch sees no GPU.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be cpu, cuda, cuda:N or auto; got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch sees no CUDA GPU")
    return torch.device(device)


def close_preset(spec: str) -> str | None:
    """Find the preset name (or "-random" twin) that `spec` is a likely typo of.

    Parameters
    ----------
    spec : str
        A model name.

    Returns
    -------
    str or None
        The closest preset name, or None when none is close.
    """
    names = [*PRESETS, *(f"{name}{RANDOM_SUFFIX}" for name in PRESETS)]
    match = difflib.get_close_matches(spec.lower(), names, n=1, cutoff=0.8)
    return match[0] if match else None


def hub_revision(model_id: str, trust_remote_code: bool = False) -> str:
    """Find the commit a hub id resolves to (downloading config.json if allowed; offline it must be cached).

    Parameters
    ----------
    model_id : str
        A Hugging Face hub id.
    trust_remote_code : bool, default False
        Passed to transformers.

    Returns
    -------
    str
        The snapshot's commit, or a sha256 of the folder when it is not a hub snapshot.

    Raises
    ------
    FileNotFoundError
        When the model cannot be found on the hub or in its cache, or has no config.json.
    """
    from transformers.utils import cached_file

    try:
        path = cached_file(model_id, "config.json", trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE")
        raise FileNotFoundError(
            f"model {model_id!r} is not a preset ({', '.join(PRESETS)}), not a local folder, and could not "
            f"be found on the Hugging Face hub or in its cache (HF_HUB_OFFLINE={offline}): {err}"
        ) from None
    if path is None:
        raise FileNotFoundError(f"model {model_id!r} has no config.json")
    parent = Path(path).parent
    return parent.name if parent.parent.name == "snapshots" else folder_sha256(parent)


def resolve_model(spec: str, trust_remote_code: bool = False) -> ModelSource:
    """Classify a model name and identify its weights.

    Parameters
    ----------
    spec : str
        A preset (or its "-random" twin), a local folder or a hub id.
    trust_remote_code : bool, default False
        Passed to transformers when a hub id is resolved.

    Returns
    -------
    ModelSource
        Where the model's files are and which weights they hold.

    Raises
    ------
    FileNotFoundError
        When a folder does not exist or has no config.json, the name is a likely typo of a preset, or a hub
        id cannot be found.
    """
    preset, random_init = split_random(spec)
    if preset in PRESETS:
        identity: dict[str, Any] = dict(preset_identity(preset))
        if random_init:
            identity = {**identity, "random_init_seed": RANDOM_SEED, "torch": torch.__version__}
        return ModelSource(spec, spec, "preset", preset, identity, random_init)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {str(path)!r} has no config.json")
        return ModelSource(
            spec, path.resolve().name, "local", str(path.resolve()), {"folder_sha256": folder_sha256(path)}
        )
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise FileNotFoundError(f"model folder {spec!r} does not exist")
    typo = close_preset(spec)
    if typo is not None and "/" not in spec:
        # A hub id is almost always "org/name": a bare name one letter off a preset is a typo, and asking
        # the hub first would only retry for half a minute when there is no network.
        raise FileNotFoundError(f"model {spec!r} is not a preset or a local folder; did you mean {typo!r}?")
    return ModelSource(
        spec, spec, "hub", spec, {"hub_id": spec, "revision": hub_revision(spec, trust_remote_code)}
    )


# Weight files from_pretrained reads (one of them, or shards named after them, must be present).
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def hub_offline() -> bool:
    """Tell whether downloads from the Hugging Face hub are switched off (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE).

    Returns
    -------
    bool
        True when either variable is set to 1, true, yes or on (any case).
    """
    return any(
        os.environ.get(name, "").strip().upper() in {"1", "TRUE", "YES", "ON"}
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _is_hub_id(spec: str) -> bool:
    """Tell whether `resolve_model` would take a model name for a hub id (not a preset, folder, path or typo)."""
    path = Path(spec).expanduser()
    if split_random(spec)[0] in PRESETS or path.is_dir() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        return False
    return "/" in spec or close_preset(spec) is None


def _check_hub_cache(model_id: str) -> None:
    """Check that a hub model's config and weights are in the local Hugging Face cache (nothing downloaded)."""
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> bool:
        """Tell whether one file of the model is in the cache."""
        try:
            return isinstance(try_to_load_from_cache(model_id, filename), str)
        except ValueError:  # not a valid repo id
            return False

    advice = (
        f"download it where there is a network (`hf download {model_id}`), point HF_HOME at a cache that holds "
        "it, or unset HF_HUB_OFFLINE"
    )
    if not cached("config.json"):
        raise FileNotFoundError(
            f"model {model_id!r} is not a preset ({', '.join(PRESETS)}) or a local folder, and as a Hugging Face "
            f"hub id it is not in the local cache while downloads are off (HF_HUB_OFFLINE): {advice}"
        )
    if not any(cached(name) for name in WEIGHT_FILES):
        raise FileNotFoundError(
            f"model {model_id!r}: the local Hugging Face cache has its config.json but no weights "
            f"({' or '.join(WEIGHT_FILES[::2])}), and downloads are off (HF_HUB_OFFLINE): {advice}"
        )


def _check_folder_weights(folder: Path) -> None:
    """Check that a local model folder holds weights from_pretrained can read."""
    if not any((folder / name).is_file() for name in WEIGHT_FILES) and not any(
        [*folder.glob("*.safetensors"), *folder.glob("pytorch_model*.bin")]
    ):
        raise FileNotFoundError(
            f"model folder {str(folder)!r} has a config.json but no weights ({' or '.join(WEIGHT_FILES[::2])}, "
            "as save_pretrained writes them)"
        )


def check_loadable(spec: str, trust_remote_code: bool = False) -> ModelSource:
    """Check that a model can be loaded, without loading its weights (seconds at most, for a study's start).

    A preset needs its package installed; a local folder its config.json and weights; a hub id, when
    downloads are off (HF_HUB_OFFLINE=1, as CI runs), its config and weights in the local cache; otherwise
    it must resolve on the hub (the weights are downloaded when it is loaded).

    Parameters
    ----------
    spec : str
        A preset (or its "-random" twin), a local folder or a hub id.
    trust_remote_code : bool, default False
        Passed to transformers when a hub id is resolved.

    Returns
    -------
    ModelSource
        The model's source, as `resolve_model` gives it.

    Raises
    ------
    FileNotFoundError
        When the model cannot be loaded; the message, one line, names the model and what to do.
    """
    if _is_hub_id(spec) and hub_offline():
        _check_hub_cache(spec)
    try:
        source = resolve_model(spec, trust_remote_code)
    except (FileNotFoundError, KeyError) as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        raise FileNotFoundError(" ".join(str(text).split())) from None
    if source.kind == "local":
        _check_folder_weights(Path(source.location))
    return source


def load_transformer(
    source: ModelSource,
    *,
    attention: bool,
    device: torch.device,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    progress: bool = True,
) -> tuple[torch.nn.Module, Any]:
    """Load the model and tokenizer of a resolved source.

    Eager attention is chosen only when attention maps are wanted (SDPA returns none); seq2seq models give
    their encoder. Weights come from safetensors when the folder has them; otherwise transformers' torch.load
    runs weights-only.

    Parameters
    ----------
    source : ModelSource
        The model (see resolve_model).
    attention : bool
        Attention maps will be wanted.
    device : torch.device
        Where the model runs.
    dtype : str, default "float32"
        The model's precision.
    trust_remote_code : bool, default False
        Allow code that comes with the weights.
    progress : bool, default True
        Show transformers' weight-loading bar.

    Returns
    -------
    tuple
        (model in eval mode on `device`, tokenizer).

    Raises
    ------
    ValueError
        When the dtype is unknown.
    """
    with _transformers_progress(progress):
        return _load(source, attention, device, dtype, trust_remote_code)


@contextlib.contextmanager
def _transformers_progress(enabled: bool) -> Iterator[None]:
    """Turn transformers' own progress bars on or off inside the block, as they were afterwards."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    if enabled != before:
        (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        if enabled != before:
            (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()


def _load(
    source: ModelSource, attention: bool, device: torch.device, dtype: str, trust_remote_code: bool
) -> tuple[torch.nn.Module, Any]:
    """Load the model and tokenizer (see load_transformer)."""
    from transformers import AutoConfig, AutoTokenizer

    torch_dtype = check_dtype(dtype)
    folder = str(preset_folder(source.location, cache_root())) if source.kind == "preset" else source.location
    common: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(folder, **common)
    config = AutoConfig.from_pretrained(folder, **common)
    options: dict[str, Any] = {"dtype": torch_dtype}
    if attention:
        options["attn_implementation"] = "eager"
    auto = _auto_class(config)
    if source.random_init:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = auto.from_config(config, **options, **common)
    else:
        if Path(folder).is_dir() and any(Path(folder).glob("*.safetensors")):
            options["use_safetensors"] = True
        model = auto.from_pretrained(folder, **options, **common)
    if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
        model = model.get_encoder()  # seq2seq models without a text-encoding class (BART, ...)
    model = model.to(device=device, dtype=torch_dtype).eval()
    return model, tokenizer


def _auto_class(config: Any) -> Any:
    """AutoModel, except where the text-encoding class differs (T5: T5EncoderModel, not T5Model)."""
    from transformers import AutoModel, AutoModelForTextEncoding
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES,
        MODEL_MAPPING_NAMES,
    )

    model_type = str(getattr(config, "model_type", ""))
    encoder = MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES.get(model_type)
    if encoder is not None and encoder != MODEL_MAPPING_NAMES.get(model_type):
        return AutoModelForTextEncoding
    return AutoModel
