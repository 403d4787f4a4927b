"""A built organism exported as a small bundle (LoRA adapter, manifest, training log), and the one shipped.

Training the organism takes more than an hour on a 2-core laptop, far beyond the quickstart's budget. The
package therefore ships the organism of the bundled model as a bundle, like the bundled model itself ships in
a wheel: ``teachwhy/experiment/organisms/<stage key>/`` holds the trained LoRA adapter, the training log and
``manifest.json`` (the stage key, the settings, the sha256 of the training data, the data report, the step).
A run whose organism stage has that key rebuilds the stage from it in seconds: the training data is rebuilt
(deterministic; its sha256 must equal the manifest's, or the stage fails) and the adapter is merged into the
target exactly as training merges it. Any change to what the key covers (the organism settings, the target,
the seed, the worlds, rubrics and control policies, the episode format) gives a new key, no bundle, and a
real build. ``teachwhy organism export`` writes a bundle from a workspace where the organism was built; the
test suite fails when the shipped bundle's key is not the templates' key.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from teachwhy.config import ExperimentConfig
from teachwhy.errors import UserError
from teachwhy.experiment.stages import StageContext
from teachwhy.storage import atomic_write_json, content_hash, file_hash

MANIFEST = "manifest.json"
LOG = "train_log.jsonl"
ADAPTER = ("adapter_config.json", "adapter_model.safetensors")


def shipped_root() -> Path:
    """Where the package keeps its organism bundles, one folder per stage key."""
    return Path(str(resources.files("teachwhy"))) / "experiment" / "organisms"


def stage_inputs(config: ExperimentConfig, package_data: str) -> dict[str, Any]:
    """Everything the organism stage's key covers (``package_data``: the hash of the data files it reads)."""
    from teachwhy.data.organism import EPISODE_FORMAT

    settings = config.organism
    return {
        "organism": settings.model_dump(mode="json", exclude={"shared_cache"}),
        "seed": organism_seed(config),
        "target": config.models.target.model_dump(mode="json"),
        "package_data": package_data,
        "episode_format": EPISODE_FORMAT,
    }


def organism_seed(config: ExperimentConfig) -> int:
    seed = config.organism.seed
    return config.generation.seed if seed is None else seed


def stage_key(config: ExperimentConfig) -> str:
    """The organism stage's key for ``config`` (as :class:`~teachwhy.experiment.stages.StageRunner` makes it),
    with the data files resolved through the config's overlay folders."""
    from teachwhy.experiment.data_keys import stage_data_hash
    from teachwhy.resources import check_overlays, use_resources

    overlays = check_overlays(config.resource_paths, file=config.source, key="resources")
    with use_resources(overlays):
        data = stage_data_hash("organism")
    return content_hash("organism", stage_inputs(config, data), [])


def restore_shipped(
    ctx: StageContext,
    *,
    base_model: str,
    build_data: Callable[[Path], dict[str, Any]],
    root: Path | None = None,
) -> dict[str, Any] | None:
    """Rebuild the organism stage from the shipped bundle with this key; its result, or ``None`` if none.

    ``build_data(path)`` writes the organism's training data and returns its report.

    Raises:
        RuntimeError: the rebuilt training data is not the data the bundle was trained on.
    """
    from transformers import AutoTokenizer

    from teachwhy.train.checkpoints import checkpoint_dir, save_merged

    bundle = (root or shipped_root()) / ctx.key
    if not (bundle / MANIFEST).is_file():
        return None
    manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
    data = ctx.dir / "organism.jsonl"
    report = build_data(data)
    if (digest := file_hash(data, length=64)) != manifest["data_sha256"]:
        raise RuntimeError(
            f"the shipped organism {bundle} was trained on data with sha256 {manifest['data_sha256'][:16]}, "
            f"but this build makes {digest[:16]} under the same key; export it again from a real build"
        )
    meta = {**manifest["checkpoint"], "base_model": base_model, "shipped": str(bundle)}
    model = save_merged(
        base_model=Path(base_model),
        trainer_checkpoint=bundle,
        target=checkpoint_dir(ctx.dir / "run", int(meta["step"])),
        method="lora",
        tokenizer=AutoTokenizer.from_pretrained(base_model),
        meta=meta,
    )
    log = ctx.dir / "run" / LOG
    shutil.copy2(bundle / LOG, log)
    return {
        "file": ctx.relative(data),
        "report": report,
        "model": ctx.relative(model),
        "log": ctx.relative(log),
        "steps": manifest["steps"],
        "shipped": str(bundle),
    }


def export_bundle(config: ExperimentConfig, out: Path) -> Path:
    """Write the bundle of ``config``'s finished organism stage to ``out/<key>/``; returns that folder.

    Raises:
        UserError: the organism was not built in the workspace, or was fully fine-tuned (only a LoRA
            organism is a small bundle), or ``out/<key>`` already exists.
    """
    key = stage_key(config)
    stage = config.workspace_path / "stages" / "organism" / key
    if not (stage / "result.json").is_file():
        raise UserError(
            f"the organism with key {key} has not been built in this workspace; run `teachwhy run` first",
            file=config.source,
            key="organism",
        )
    if config.organism.train.method != "lora":
        key_name = "organism.train.method"
        raise UserError("only a LoRA organism can be exported", file=config.source, key=key_name)
    destination = out / key
    if destination.exists():
        raise UserError("exists already; remove it to export again", file=destination)
    result = json.loads((stage / "result.json").read_text(encoding="utf-8"))
    checkpoint = config.workspace_path / result["model"]
    meta = json.loads((checkpoint / "checkpoint.json").read_text(encoding="utf-8"))
    meta.pop("base_model", None)  # a path on the machine that built it
    staging = out / f".{key}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    adapter_config = json.loads((checkpoint / "adapter" / ADAPTER[0]).read_text(encoding="utf-8"))
    adapter_config["base_model_name_or_path"] = config.models.target.model
    atomic_write_json(staging / ADAPTER[0], adapter_config)
    shutil.copy2(checkpoint / "adapter" / ADAPTER[1], staging / ADAPTER[1])
    shutil.copy2(config.workspace_path / result["log"], staging / LOG)
    atomic_write_json(
        staging / MANIFEST,
        {
            "key": key,
            "label": result["report"].get("label"),
            "inputs": json.loads((stage / "inputs.json").read_text(encoding="utf-8"))["inputs"],
            "data_sha256": file_hash(config.workspace_path / result["file"], length=64),
            "report": result["report"],
            "steps": result["steps"],
            "checkpoint": meta,
        },
    )
    for file in staging.iterdir():  # package files, read by every user (the stage's copies are private)
        file.chmod(0o644)
    staging.chmod(0o755)
    staging.rename(destination)
    return destination
