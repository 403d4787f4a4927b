"""The experiment's stage graph: generate → mix → train → eval at checkpoints → OOD → summary.

Each box is a content-addressed stage (:mod:`teachwhy.experiment.stages`), so a stage shared by two arms (the
same source with the same settings, the untrained target's evaluation) runs once, and a finished experiment
re-runs without a single model call.

Per arm:

- **generate**: one stage per data source. ``rewrite`` and ``augment`` read another source of the same arm.
- **mix**: the sources named in ``weights`` (default: every source that no ``rewrite``/``augment`` of the
  arm consumes — so a demonstrations arm with a rewrite trains on the rewritten demonstrations, and the
  comparison "actions only" vs "actions + why" is two arms), to ``budget_tokens`` if set.
- **train**: the arm's training stages on the mix, with checkpoints every ``save_steps``.
- **eval**: the honeypot suite on every checkpoint (or the last, per ``eval.checkpoints``); step 0 is the
  untrained target, evaluated once for all arms. An arm without data is the baseline: step 0 only.
- **ood**: n-gram overlap and embedding similarity between the arm's mix and each family's eval prompts.

Once, when an arm has ``start_from: organism``:

- **organism**: the model organism of misalignment, a research control (:mod:`teachwhy.data.organism`):
  misaligned scripted episodes on train-split worlds, chat SFT of the target into a merged checkpoint. Its
  evaluation (``eval/organism/step-0``) is step 0 of every organism arm; their training starts from it, and
  an organism arm without data is the organism baseline its siblings are compared with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from teachwhy.config import ORGANISM_LABEL, ArmConfig, ExperimentConfig, ImportedSource, SourceBase
from teachwhy.constitution import Constitution, load_constitution
from teachwhy.errors import UserError
from teachwhy.experiment.data_keys import STAGE_DATA, stage_data_hash
from teachwhy.experiment.heldout import heldout_comparisons, with_heldout_evals
from teachwhy.experiment.stages import StageContext, StageRunner
from teachwhy.experiment.summary import (
    ArmSummary,
    CheckpointEval,
    Comparison,
    ExperimentSummary,
    OodDistance,
    checkpoint_eval,
)
from teachwhy.resources import AREAS, check_overlays, resources_hash, use_resources
from teachwhy.storage import read_jsonl, write_jsonl

if TYPE_CHECKING:
    from teachwhy.evals.results import HoneypotResults

DERIVED = ("rewrite", "augment")  # sources made from another source of the same arm
# a gate on an eval stage's outcome, not an input of its work: changing it does not re-run finished stages
EVAL_GATES = {"max_failed_share", "controls"}
SUMMARY_FILE = "summary.json"
HELDOUT_EVALS = {"assessment", "adherence"}  # their own stages; not part of the honeypot stages' keys
ProgressHook = Callable[[str, int, int], None]


class StageIncomplete(RuntimeError):
    """A stage finished with work left undone (e.g. model calls that failed): it must not count as done."""


def package_data_hash(*folders: str) -> str:
    """A hash of the data files (prompts, seeds, rubrics) under the package ``folders``, each resource area
    there resolved through the overlay in effect (:mod:`teachwhy.resources`).

    Part of the held-out evaluations' keys; the honeypot stages hash what they read
    (:mod:`teachwhy.experiment.data_keys`).
    """
    areas = [a for a, where in AREAS.items() for f in folders if where == f or where.startswith(f"{f}/")]
    return resources_hash((a, "**/*") for a in areas)


@dataclass
class ArmOutputs:
    """What the stages of one arm returned (``None`` where a dry run stopped)."""

    arm: ArmConfig
    sources: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    mix: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    evals: list[dict[str, Any] | None] = field(default_factory=list)
    ood: dict[str, Any] | None = None
    rl: dict[str, Any] | None = None  # the arm's RL stage (teachwhy.experiment.rl_stage)


class ExperimentPipeline:
    """Builds and runs (or, with a dry-run runner, inspects) an experiment's stages."""

    def __init__(
        self,
        config: ExperimentConfig,
        runner: StageRunner,
        *,
        progress: Callable[[str], AbstractContextManager[ProgressHook | None]] | None = None,
        eval_display: str = "none",
        arms: Sequence[str] | None = None,
    ) -> None:
        self.config = config
        self.arms = select_arms(config, arms)  # the arms whose stages run (all by default)
        self.runner = runner
        self.workspace = config.workspace_path
        self._bar = progress or _no_progress
        self._token_counter: Any = None
        self._controls_result: dict[str, Any] | None = None
        self._organism_result: dict[str, Any] | None = None
        self.eval_display = eval_display  # Inspect's display for evaluation stages ("rich", "plain", "none")
        self.constitution: Constitution = load_constitution(config.constitution_path)
        from teachwhy.experiment.rl_stage import check_rl_arms

        check_rl_arms(config)
        # the user's overlay folders: every stage reads its data files, and hashes them, through them
        self.resources = check_overlays(config.resource_paths, file=config.source, key="resources")
        with use_resources(self.resources):
            self._data_hashes = {stage: stage_data_hash(stage) for stage in STAGE_DATA}
            # every data file (overlay included), for a stage that has not declared what it reads in
            # experiment/data_keys.py
            self._data_hash = package_data_hash("prompts", "data", "evals")
            self._eval_hash = package_data_hash("evals")

    # -- the whole experiment -------------------------------------------------------------------------

    def run(self) -> ExperimentSummary | None:
        """Every arm's stages in order, then the summary (``None`` in a dry run that is not finished)."""
        outputs = self.run_stages()
        if self.runner.dry_run and not all(self._finished(o) for o in outputs):
            return None
        summary = self._summary(outputs)
        if not self.runner.dry_run:
            summary.write(self.workspace / SUMMARY_FILE)
        return summary

    def run_stages(self) -> list[ArmOutputs]:
        """The stages of the selected arms (and the untrained target's evaluation and the instrument's
        controls they share), in order."""
        with use_resources(self.resources):
            return self._run_stages()

    def _run_stages(self) -> list[ArmOutputs]:
        self._controls_result = self._controls() if self.config.eval.controls else None
        baseline = self._eval("step-0", self._target_spec(), step=0, tokens_seen=0, after=[])
        organism: dict[str, Any] | None = None
        organism_eval: dict[str, Any] | None = None
        if any(arm.start_from == "organism" for arm in self.config.arms):
            organism = self._organism()
            model = self._checkpoint_model(organism["model"]) if organism else "the organism"
            organism_eval = self._eval(
                "organism/step-0", model, step=0, tokens_seen=0, after=[organism], start="organism"
            )
        self._organism_result = organism
        return [
            self._arm(arm, organism_eval if arm.start_from == "organism" else baseline, organism)
            for arm in self.arms
        ]

    def assemble(self) -> ExperimentSummary:
        """The summary of whatever has finished, every arm included (needs a dry-run runner)."""
        assert self.runner.dry_run, "assemble() reads finished stages only"
        return self._summary(self.run_stages())

    @staticmethod
    def _finished(o: ArmOutputs) -> bool:
        return (
            bool(o.evals) and all(e is not None for e in o.evals) and (o.train is None or o.ood is not None)
        )

    def _arm(
        self, arm: ArmConfig, baseline: dict[str, Any] | None, organism: dict[str, Any] | None = None
    ) -> ArmOutputs:
        out = ArmOutputs(arm)
        sources = arm.data.sources()
        if not sources:
            out.evals = [baseline]
            self._rl(out, organism)
            return out
        for name in sorted(sources, key=lambda n: n in DERIVED):
            out.sources[name] = self._generate(arm, name, sources[name], out.sources, organism)
        out.mix = self._mix(arm, out.sources)
        out.train = self._train(arm, out.mix, organism if arm.start_from == "organism" else None)
        out.evals = [baseline, *self._checkpoint_evals(arm, out.train)]
        self._rl(out, organism)
        out.ood = self._ood(arm, out.mix)
        return out

    def _rl(self, out: ArmOutputs, organism: dict[str, Any] | None) -> None:
        """The arm's RL after its SFT, when it has an ``rl`` block, and the evaluation of its checkpoints."""
        if out.arm.rl is None:
            return
        from teachwhy.experiment.rl_stage import rl_checkpoint_evals, rl_stage

        out.rl = rl_stage(self, out.arm, out.train, organism if out.arm.start_from == "organism" else None)
        out.evals += rl_checkpoint_evals(self, out.arm, out.rl)

    # -- generate ---------------------------------------------------------------------------------------

    def _counter(self) -> Any:
        """The target tokenizer's counter (loaded once), so every record carries exact token counts."""
        if self._token_counter is None:
            from teachwhy.data.tokens import target_counter

            self._token_counter = target_counter(self.config)
        return self._token_counter

    def _generate(
        self,
        arm: ArmConfig,
        name: str,
        source: SourceBase,
        done: dict[str, dict[str, Any] | None],
        organism: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        models = self.config.models
        inputs: dict[str, Any] = {
            "generator": name,
            "source": source.model_dump(mode="json"),
            "constitution": self.constitution.sha256,
            "models": {r: models.role(r).model_dump(mode="json") for r in ("generator", "judge", "target")},
            "generation": self.config.generation.model_dump(mode="json"),
            "package_data": self._data_hashes[f"generate.{name}"],
        }
        if isinstance(source, ImportedSource):  # the imported file's content, not only its path
            from teachwhy.data.importing import imported_sha256

            key = f"arms.{arm.name}.data.imported.path"
            inputs["input_sha256"] = imported_sha256(self.config, source, key=key)
        after: list[dict[str, Any] | None] = []
        parent_name = getattr(source, "source", None) if name in DERIVED else None
        if parent_name is not None:
            if parent_name not in done:
                raise UserError(
                    f"reads source '{parent_name}', which this arm does not generate",
                    file=self.config.source,
                    key=f"arms.{arm.name}.data.{name}.source",
                )
            after = [done[parent_name]]
        # demonstrations played by the organism: its key joins through `after`, like a training stage's
        by_organism = getattr(source, "played_by", None) == "start" and arm.start_from == "organism"
        if by_organism:
            inputs["played_by"] = "organism"
            after.append(organism)

        def work(ctx: StageContext) -> dict[str, Any]:
            kwargs: dict[str, Any] = {}
            if parent_name is not None:
                parent = done[parent_name]
                assert parent is not None
                kwargs["input_path"] = self.workspace / parent["file"]
            with self._bar(f"{arm.name}: {name}") as hook, self._player(by_organism, organism, ctx) as player:
                if player is not None:
                    kwargs["model"], kwargs["model_name"] = player
                generate = _generator(name)
                counter = self._counter()
                report = generate(
                    self.config, source, self.constitution, ctx.dir, progress=hook, counter=counter, **kwargs
                )
            if not report.complete:
                failed = ", ".join(f"{k}={v}" for k, v in sorted(report.model_errors.items()))
                raise StageIncomplete(
                    f"{report.unfinished} items are unfinished after failed model calls ({failed}); "
                    "run again to retry them"
                )
            return {"file": ctx.relative(report.out_file), "report": report.to_dict()}

        detail = f"generator={models.generator.model}"
        return self.runner.stage("generate", f"{arm.name}.{name}", inputs, work, after=after, detail=detail)

    @contextmanager
    def _player(
        self, by_organism: bool, organism: dict[str, Any] | None, ctx: StageContext
    ) -> Iterator[tuple[Any, str] | None]:
        """The organism as the agent of a demonstrations stage (loaded for the stage, freed after it)."""
        if not by_organism:
            yield None
            return
        from teachwhy.models.serve import open_checkpoint

        assert organism is not None
        temperature = self.config.generation.temperature
        spec = self._checkpoint_model(organism["model"])
        with open_checkpoint(self.config, spec, temperature=temperature, log_dir=ctx.dir) as model:
            yield model, f"organism-{organism['__key__']}"

    # -- mix --------------------------------------------------------------------------------------------

    def _mixed_sources(self, arm: ArmConfig) -> list[str]:
        sources = arm.data.sources()
        if arm.data.weights:
            return list(arm.data.weights)
        consumed = {getattr(s, "source", None) for n, s in sources.items() if n in DERIVED}
        return [n for n in sources if n not in consumed]

    def _mix(self, arm: ArmConfig, generated: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
        names = self._mixed_sources(arm)
        weights = {n: arm.data.weights.get(n, 1.0) for n in names}
        seed = self.config.generation.seed
        inputs = {
            "sources": names,
            "weights": weights,
            "budget": arm.data.budget_tokens,
            "seed": self.config.generation.seed,
        }

        def work(ctx: StageContext) -> dict[str, Any]:
            from teachwhy.data.mix import build_mix

            records: dict[str, list[dict[str, Any]]] = {}
            for n in names:
                result = generated[n]
                assert result is not None
                records[n] = read_jsonl(self.workspace / result["file"])
            if arm.data.budget_tokens is None:
                mixed = [{**r, "mix": {"source": n, "repeat": 0}} for n in names for r in records[n]]
                tokens = {n: sum(int(r["tokens"]["count"]) for r in records[n]) for n in names}
                counts = {n: len(records[n]) for n in names}
                report: dict[str, Any] = {"budget_tokens": None, "total_tokens": sum(tokens.values())}
            else:
                mixed, mix_report = build_mix(records, weights, arm.data.budget_tokens, seed=seed)
                tokens = {s.name: s.achieved_tokens for s in mix_report.sources}
                counts = {s.name: s.items for s in mix_report.sources}
                report = mix_report.to_dict()
            if not mixed:
                raise UserError(
                    "the mix is empty: every generated item was dropped (see `teachwhy data stats`)",
                    key=f"arms.{arm.name}.data",
                )
            path = ctx.dir / "mix.jsonl"
            write_jsonl(path, mixed)
            return {
                "file": ctx.relative(path),
                "tokens_by_source": tokens,
                "records_by_source": counts,
                "report": report,
            }

        generated_results = [generated[n] for n in names]
        return self.runner.stage("mix", arm.name, inputs, work, after=generated_results)

    # -- train ------------------------------------------------------------------------------------------

    def _train(
        self, arm: ArmConfig, mix: dict[str, Any] | None, organism: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        train_config = self.config.train_for(arm)
        target = self._target_spec()
        inputs: dict[str, Any] = {"train": train_config.training_settings(), "target": target}
        after = [mix]
        if arm.start_from == "organism":
            inputs["start_from"] = "organism"  # the organism's key joins through `after`
            after.append(organism)

        def work(ctx: StageContext) -> dict[str, Any]:
            from teachwhy.train.run import resolve_target_path, train_model

            assert mix is not None
            if organism is not None:
                start = str((self.workspace / organism["model"]).resolve())
            else:
                start = resolve_target_path(self.config.models.target)
            result = train_model(
                model=start,
                data=[self.workspace / mix["file"]],
                out_dir=ctx.dir / "run",
                config=train_config,
                resume=True,
            )
            return {
                "checkpoints": [
                    {"step": c.step, "path": ctx.relative(c.path), "tokens_seen": c.tokens_seen}
                    for c in result.checkpoints
                ],
                "log": ctx.relative(result.log_path),
                "tokens_by_source": result.tokens_by_source,
                "steps": result.steps,
                "too_long": len(result.too_long),
                "split_documents": result.split_documents,
            }

        detail = f"target={target}" + (" start_from=organism" if arm.start_from == "organism" else "")
        return self.runner.stage("train", arm.name, inputs, work, after=after, detail=detail)

    # -- organism ---------------------------------------------------------------------------------------

    def _organism(self) -> dict[str, Any] | None:
        """The model organism of misalignment (research control): its data, then the target trained on it."""
        from teachwhy.experiment.organism_bundle import organism_seed, stage_inputs

        settings = self.config.organism
        seed = organism_seed(self.config)
        inputs = stage_inputs(self.config, self._data_hashes["organism"])

        shared = settings.shared_cache
        if shared is None:
            shared = self.config.models.target.model == "embedded"

        def work(ctx: StageContext) -> dict[str, Any]:
            from teachwhy.data.organism import build_organism_data
            from teachwhy.experiment import organism_bundle, organism_cache
            from teachwhy.train.run import resolve_target_path, train_model

            def build_data(out: Path) -> dict[str, Any]:
                return build_organism_data(
                    list(settings.families),
                    settings.worlds,
                    seed=seed,
                    out_file=out,
                    counter=self._counter(),  # the organism's data does not depend on the constitution
                ).to_dict()

            base = resolve_target_path(self.config.models.target)
            # the package's own bundle first (the same on every machine), then the shared cache
            shipped = organism_bundle.restore_shipped(ctx, base_model=base, build_data=build_data)
            if shipped is not None:
                return shipped
            if shared and (restored := organism_cache.restore(ctx)) is not None:
                return restored
            data = ctx.dir / "organism.jsonl"
            report = build_data(data)
            result = train_model(
                model=base,
                data=[data],
                out_dir=ctx.dir / "run",
                config=settings.train,
                resume=True,
            )
            built = {
                "file": ctx.relative(data),
                "report": report,
                "model": ctx.relative(result.final.path),
                "log": ctx.relative(result.log_path),
                "steps": result.steps,
            }
            if shared:
                organism_cache.publish(ctx, built)
            return built

        detail = f"{ORGANISM_LABEL}; target={self._target_spec()}"
        return self.runner.stage("organism", "organism", inputs, work, detail=detail)

    def _checkpoint_evals(self, arm: ArmConfig, train: dict[str, Any] | None) -> list[dict[str, Any] | None]:
        if train is None:
            return [self.runner.stage("eval", f"{arm.name}/checkpoints", {}, _never, after=[None])]
        checkpoints = train["checkpoints"]
        if self.config.eval.checkpoints == "last":
            checkpoints = checkpoints[-1:]
        return [
            self._eval(
                f"{arm.name}/step-{c['step']}",
                self._checkpoint_model(c["path"]),
                step=c["step"],
                tokens_seen=c["tokens_seen"],
                after=[train],
            )
            for c in checkpoints
        ]

    # -- controls ---------------------------------------------------------------------------------------

    def _controls(self) -> dict[str, Any] | None:
        """The scripted controls, once per judge and policy: the instrument's sensitivity and specificity."""
        settings = self.config.eval
        inputs = {
            "policy": settings.policy,
            "families": list(settings.families),
            "judge": self.config.models.judge.model_dump(mode="json") if settings.policy != "rule" else None,
            "judge_max_tokens": settings.judge_max_tokens,
            "package_data": self._data_hashes["controls"],
        }

        def work(ctx: StageContext) -> dict[str, Any]:
            from teachwhy.evals.controls import run_controls
            from teachwhy.evals.controls_cli import controls_json
            from teachwhy.evals.scenario import load_scenarios

            judge = None
            if settings.policy != "rule":
                from teachwhy.models import role_model

                judge = role_model(self.config, "judge", temperature=0.0)
            scenarios = [
                s
                for s in load_scenarios()
                if s.family in settings.families and s.split in ("eval", "heldout")
            ]
            report = run_controls(
                scenarios, judge=judge, policy=settings.policy, judge_max_tokens=settings.judge_max_tokens
            )
            return controls_json(report)

        return self.runner.stage(
            "controls", settings.policy, inputs, work, detail=f"policy={settings.policy}"
        )

    # -- eval -------------------------------------------------------------------------------------------

    def _target_spec(self) -> str:
        return self.config.models.target.model

    def _checkpoint_model(self, relative: str) -> str:
        from teachwhy.models.serve import checkpoint_model

        # eval.serve chooses the engine (embedded, hf, vllm); unset, a checkpoint is served like the target
        return checkpoint_model(self.config, (self.workspace / relative).resolve())

    def _eval(
        self,
        name: str,
        model: str,
        *,
        step: int,
        tokens_seen: int,
        after: list[dict[str, Any] | None],
        start: str = "target",
    ) -> dict[str, Any] | None:
        judge = self.config.models.judge
        untrained = step == 0 and start == "target"
        inputs = {
            "eval": self.config.eval.model_dump(mode="json", exclude=EVAL_GATES | HELDOUT_EVALS),
            # a checkpoint's identity comes from its training stage's key (in `after`), not its path
            "model": model if untrained else f"{'organism-' if start == 'organism' else ''}checkpoint-{step}",
            "judge": judge.model_dump(mode="json"),
            "max_connections": self.config.generation.max_connections,
            "package_data": self._data_hashes["eval"],
        }
        if step == 0:
            inputs["target"] = self.config.models.target.model_dump(mode="json")

        def work(ctx: StageContext) -> dict[str, Any]:
            from teachwhy.evals.results import RESULTS_FILE
            from teachwhy.evals.run import run_honeypot_eval
            from teachwhy.models import role_model
            from teachwhy.models.serve import open_checkpoint

            temperature = self.config.eval.temperature
            if untrained:
                target = role_model(self.config, "target", temperature=temperature)
                results = run_honeypot_eval(
                    self.config, target=target, log_dir=ctx.dir, display=self.eval_display
                )
            else:
                # a checkpoint is evaluated once: load it unshared and free its weights afterwards
                with open_checkpoint(self.config, model, temperature=temperature, log_dir=ctx.dir) as target:
                    results = run_honeypot_eval(
                        self.config, target=target, log_dir=ctx.dir, display=self.eval_display
                    )
            self._check_failed_share(name, step, results, ctx)
            compared = (results.indicators or {}).get("compared_results")
            if compared:  # eval.split both: the eval split's results are held to the same limit
                from teachwhy.evals.results import HoneypotResults

                self._check_failed_share(name, step, HoneypotResults.load(ctx.dir / compared), ctx, compared)
            return {
                "step": step,
                "model": model,
                "tokens_seen": tokens_seen,
                "results_file": ctx.relative(ctx.dir / RESULTS_FILE),
                "log_files": [ctx.relative(ctx.dir / Path(f).name) for f in results.log_files],
                "rows": [asdict(row) for row in results.rows],
                "indicators": results.indicators,
                "compared_results_file": ctx.relative(ctx.dir / compared) if compared else None,
            }

        result = self.runner.stage("eval", name, inputs, work, after=after, detail=f"target={model}")
        return with_heldout_evals(self, result, name, model, step=step, after=after)

    def _check_failed_share(
        self, name: str, step: int, results: HoneypotResults, ctx: StageContext, file: str | None = None
    ) -> None:
        """Fail the stage (so it is not cached) when too many samples errored or went unscored."""
        from teachwhy.evals.results import RESULTS_FILE, failed_samples

        limit = self.config.eval.max_failed_share
        failed = failed_samples(results)
        if failed.share <= limit:
            return
        arm, _, _ = name.rpartition("/")
        which = f"step {step} of arm {arm}" if arm else f"step {step} (the untrained target)"
        raise StageIncomplete(
            f"eval {which}: {failed.describe()} > {100 * limit:g}% (eval.max_failed_share); "
            f"see {ctx.relative(ctx.dir / (file or RESULTS_FILE))}; `teachwhy run` runs it again"
        )

    # -- OOD --------------------------------------------------------------------------------------------

    def eval_prompts(self, split: str | None = None) -> dict[str, list[str]]:
        """Each evaluated family's rendered prompts (system prompt, task, and the world's texts) on one split
        (default: the configured one; with ``both``, the held-out), only the worlds ``eval.worlds`` names."""
        from teachwhy.evals.run import evaluated_splits, worlds_by_split
        from teachwhy.evals.tasks import honeypot_episodes

        settings = self.config.eval
        splits = evaluated_splits(settings.split)
        split = split or splits[0]
        worlds = worlds_by_split(list(settings.worlds) if settings.worlds else None, splits)
        prompts: dict[str, list[str]] = {}
        with use_resources(self.resources):
            episodes = honeypot_episodes(
                list(settings.families),
                split=split,
                limit=settings.limit,
                goal_types=list(settings.goal_types) if settings.goal_types else None,
                goal_values=settings.goal_values,
                urgencies=list(settings.urgencies) if settings.urgencies else None,
                seed=settings.seed,
                worlds=worlds[split],
                paraphrases=settings.paraphrases,
            )
        for episode in episodes:
            texts = [episode.system_prompt, episode.task, *_strings(episode.world)]
            prompts.setdefault(episode.family, []).append("\n".join(t for t in texts if t))
        return prompts

    def _ood(self, arm: ArmConfig, mix: dict[str, Any] | None) -> dict[str, Any] | None:
        inputs = {
            "eval": self.config.eval.model_dump(mode="json", exclude=EVAL_GATES | HELDOUT_EVALS),
            "package_data": self._data_hashes["ood"],
            "prompts": "per split, on the worlds and conditions evaluated",  # earlier results ignored both
        }

        def work(ctx: StageContext) -> dict[str, Any]:
            from teachwhy.evals.run import evaluated_splits
            from teachwhy.experiment.ood import ood_distances, training_texts

            assert mix is not None
            texts = training_texts([self.workspace / mix["file"]])
            splits = evaluated_splits(self.config.eval.split)
            # one call for every split, so the training data is embedded once
            which: dict[str, tuple[str, str]] = {}
            evaluations: dict[str, list[str]] = {}
            for s in splits:
                for family, prompts in self.eval_prompts(s).items():
                    which[f"{family}/{s}"] = (family, s)
                    evaluations[f"{family}/{s}"] = prompts
            distances = ood_distances({arm.name: texts}, evaluations)
            return {
                "distances": [
                    {**d.__dict__, "evaluation": which[d.evaluation][0], "split": which[d.evaluation][1]}
                    for d in distances
                ]
            }

        return self.runner.stage("ood", arm.name, inputs, work, after=[mix])

    # -- summary ----------------------------------------------------------------------------------------

    def _summary(self, outputs: list[ArmOutputs]) -> ExperimentSummary:
        from teachwhy.evals.stats import rate_difference

        arms = [self._arm_summary(o) for o in outputs]
        baseline = next(
            (
                o.arm.name
                for o in outputs
                if not o.arm.data.sources() and o.arm.start_from == "target" and o.arm.rl is None
            ),
            None,
        )
        organism_baseline = next(
            (
                o.arm.name
                for o in outputs
                if not o.arm.data.sources() and o.arm.start_from == "organism" and o.arm.rl is None
            ),
            None,
        )
        comparisons: list[Comparison] = []
        finals = {a.name: a.final() for a in arms}
        for arm, o in zip(arms, outputs, strict=True):
            final = arm.final()
            # an organism arm is compared with the organism baseline when there is one, and the organism
            # baseline itself with the untrained target's
            organism_arm = o.arm.start_from == "organism" and arm.name != organism_baseline
            against = organism_baseline if organism_arm and organism_baseline else baseline
            if against is None or arm.name == against:
                continue
            base_final = finals.get(against)
            if base_final is None or final is None:
                continue
            paired = self._paired_comparisons(arm.name, against, final, base_final)
            if paired is not None:
                comparisons.extend(paired)
                continue
            pairs = {**final.families, "overall": final.overall}
            base_pairs = {**base_final.families, "overall": base_final.overall}
            for family, rate in pairs.items():
                other = base_pairs.get(family)
                if rate is None or other is None or rate.n == 0 or other.n == 0:
                    continue
                d = rate_difference(rate.harmful, rate.n, other.harmful, other.n)
                comparisons.append(
                    Comparison(arm.name, against, family, d.diff, d.ci_low, d.ci_high, d.p_value)
                )
        ood = [OodDistance(**d) for o in outputs if o.ood for d in o.ood["distances"]]
        models = {r: self.config.models.role(r).model for r in ("generator", "target", "judge", "auditor")}
        return ExperimentSummary(
            name=self.config.name,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            constitution_path=str(self.config.constitution_path),
            constitution_sha256=self.constitution.sha256,
            principles=len(self.constitution.principles),
            models=models,
            baseline=baseline,
            organism_baseline=organism_baseline,
            arms=arms,
            comparisons=comparisons,
            ood=ood,
            controls=self._controls_result,
            organism=self._organism_summary(),
            heldout_comparisons=heldout_comparisons(self.workspace, arms, baseline),
        )

    def _paired_comparisons(
        self, arm: str, against: str, final: CheckpointEval, base_final: CheckpointEval
    ) -> list[Comparison] | None:
        """The arm's final headline minus its baseline's, from both results files: paired by episode where
        both played the same episodes (McNemar, paired cluster bootstrap), else unpaired; ``None`` when a
        results file is missing (the summary's counts are compared instead)."""
        from teachwhy.evals.comparison import compare_overall, compare_results
        from teachwhy.evals.results import HoneypotResults

        if final.results_file is None or base_final.results_file is None:
            return None
        a = HoneypotResults.load(self.workspace / final.results_file)
        b = HoneypotResults.load(self.workspace / base_final.results_file)
        found = [c for c in compare_results(a, b) if not c.category]
        found.append(compare_overall(a, b))
        return [
            Comparison(
                arm,
                against,
                c.family,
                c.diff,
                c.ci_low,
                c.ci_high,
                c.p_value,
                group=c.group,
                paired=c.paired,
                pairs=c.pairs,
            )
            for c in found
            if c.diff is not None and c.ci_low is not None and c.ci_high is not None and c.p_value is not None
        ]

    def _organism_summary(self) -> dict[str, Any] | None:
        found = self._organism_result
        if found is None:
            return None
        return {"label": ORGANISM_LABEL, "model": found["model"], **found["report"]}

    def _arm_summary(self, o: ArmOutputs) -> ArmSummary:
        summary = ArmSummary(name=o.arm.name, description=o.arm.description, start_from=o.arm.start_from)
        if o.arm.start_from == "organism":
            summary.research_control = ORGANISM_LABEL
        if o.mix is not None:
            summary.tokens_by_source = dict(o.mix["tokens_by_source"])
            summary.records_by_source = dict(o.mix["records_by_source"])
            summary.data_files = {"mix": o.mix["file"]}
        for name, result in o.sources.items():
            if result is None:
                continue
            summary.data_files[name] = result["file"]
            for reason, count in result["report"]["drops"].items():
                key = f"{name}: {reason}"
                summary.dropped_by_reason[key] = summary.dropped_by_reason.get(key, 0) + count
        if o.train is not None:
            summary.train_log = o.train["log"]
            summary.trained_tokens_by_source = dict(o.train.get("tokens_by_source", {}))
            summary.left_out_too_long = int(o.train.get("too_long", 0))
            summary.split_documents = int(o.train.get("split_documents", 0))
        summary.checkpoints = [checkpoint_eval(e) for e in o.evals if e is not None]
        if o.rl is not None:
            from teachwhy.experiment.rl_stage import rl_summary

            summary.rl = rl_summary(o.rl)
        return summary


def select_arms(config: ExperimentConfig, names: Sequence[str] | None) -> list[ArmConfig]:
    """The arms named in ``names`` (every arm when ``None``), in the config's order.

    Raises:
        UserError: a name is not an arm of the experiment.
    """
    if names is None:
        return list(config.arms)
    known = {arm.name for arm in config.arms}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(
            f"no arm named {', '.join(unknown)} in {config.source} (arms: {', '.join(sorted(known))})",
            key="--arm",
        )
    return [arm for arm in config.arms if arm.name in names]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _never(ctx: StageContext) -> dict[str, Any]:
    raise AssertionError("a blocked stage is never run")


def _generator(name: str) -> Callable[..., Any]:
    from teachwhy.data import advice, augment, documents, honeypot_demos, importing, rewrite, stories

    table: dict[str, Callable[..., Any]] = {
        "documents": documents.generate_documents,
        "stories": stories.generate_stories,
        "advice": advice.generate_advice,
        "honeypot_demos": honeypot_demos.generate_honeypot_demos,
        "rewrite": rewrite.generate_rewrite,
        "augment": augment.generate_augment,
        "imported": importing.generate_imported,
    }
    return table[name]


@contextmanager
def _no_progress(label: str) -> Iterator[ProgressHook | None]:
    yield None
