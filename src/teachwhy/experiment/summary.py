"""The experiment summary: everything the report shows, as one JSON file (``<workspace>/summary.json``).

`teachwhy run` writes it after the last stage; `teachwhy report` reads only this file (and the files it links
to), so a report can be rebuilt, diffed or produced from results computed elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from teachwhy.errors import UserError
from teachwhy.evals.stats import wilson_interval
from teachwhy.storage import atomic_write_json

SUMMARY_VERSION = 1


@dataclass
class RateSummary:
    """A misalignment rate with its Wilson 95% interval and the samples that could not be scored."""

    n: int  # scored samples
    harmful: int
    rate: float | None  # None when n == 0
    ci_low: float
    ci_high: float
    unscored: int = 0  # judge output unparseable / refused, an incomplete ending, or no rule/judge verdict
    errors: int = 0  # failed model calls (target or judge)
    disagreements: int = 0  # rule and judge disagreed (counted whatever the policy)
    truncated_replies: int = 0  # agent replies cut off at the output limit
    headline: list[str] = field(default_factory=list)  # the categories this rate counts (e.g. coercion)
    categories: dict[str, RateSummary] = field(default_factory=dict)  # each behaviour category's rate
    endings: dict[str, int] = field(default_factory=dict)  # how the episodes ended (done, truncated, error…)
    cluster_ci_low: float | None = None  # clustered 95% interval (worlds resampled; teachwhy.evals.design)
    cluster_ci_high: float | None = None
    clusters: int = 0  # worlds behind the rate

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RateSummary:
        categories = {k: cls.from_json(v) for k, v in data.get("categories", {}).items()}
        return cls(**{**data, "categories": categories})


@dataclass
class CheckpointEval:
    """The evaluation of one checkpoint of one arm."""

    step: int  # optimizer steps (0 = the untrained target)
    model: str  # the Inspect model string that was evaluated
    tokens_seen: int = 0  # training tokens consumed up to this checkpoint
    results_file: str | None = None  # the eval results JSON (relative to the workspace)
    log_files: list[str] = field(default_factory=list)  # Inspect logs (relative to the workspace)
    families: dict[str, RateSummary] = field(default_factory=dict)
    overall: RateSummary | None = None
    # the held-out evaluations, when enabled (see teachwhy.experiment.heldout for their fields):
    # assessment: {results_file, log_files, counts, concern_threshold, dimensions: [{id, mean, ci_low, ...}]}
    # adherence: {results_file, log_files, situations_file, counts, overall, sections, principles}
    assessment: dict[str, Any] | None = None
    adherence: dict[str, Any] | None = None
    # the headline: the pressured cells (a threat to the agent or a goal conflict), per family and overall
    pressured: dict[str, RateSummary] = field(default_factory=dict)
    pressured_overall: RateSummary | None = None
    control: dict[str, RateSummary] = field(default_factory=dict)  # the no-pressure cells, per family
    worlds: dict[str, RateSummary] = field(
        default_factory=dict
    )  # "<family>/<world id>": every cell of a world
    # the monitoring indicators (teachwhy.evals.indicators.Indicators as JSON): misalignment, harmful tool
    # calls, verdict agreement, and the held-out vs eval gap when eval.split is both; None in older runs
    indicators: dict[str, Any] | None = None
    compared_results_file: str | None = None  # the other split's results (eval.split: both)
    phase: str = "train"  # "rl": a checkpoint of the arm's RL after SFT (teachwhy.experiment.rl_stage)
    rl_step: int | None = None  # RL steps behind an RL checkpoint (``step`` continues the SFT count)


@dataclass
class ArmSummary:
    """One arm: what it trained on and how each of its checkpoints scored."""

    name: str
    description: str = ""
    tokens_by_source: dict[str, int] = field(default_factory=dict)
    records_by_source: dict[str, int] = field(default_factory=dict)
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    data_files: dict[str, str] = field(default_factory=dict)  # source → JSONL (relative to the workspace)
    train_log: str | None = None  # training log JSONL (relative to the workspace)
    checkpoints: list[CheckpointEval] = field(default_factory=list)
    # what training consumed, per source: epochs included, conversations left out for length excluded
    trained_tokens_by_source: dict[str, int] = field(default_factory=dict)
    left_out_too_long: int = 0  # conversations longer than train.max_length, not trained on
    split_documents: int = 0  # documents longer than train.max_length, trained as several chunks
    start_from: str = "target"  # "organism": trained on top of the model organism of misalignment
    research_control: str | None = None  # set for organism arms: what kind of research control the arm is
    # the arm's RL after SFT, when configured: {after, start_step, steps, log, rewards, judge_counts, prompts,
    # augmented} (teachwhy.experiment.rl_stage.rl_summary)
    rl: dict[str, Any] | None = None

    @property
    def training_tokens(self) -> int:
        """Tokens of the arm's training data (the mix), as counted in its records."""
        return sum(self.tokens_by_source.values())

    @property
    def trained_tokens(self) -> int:
        """Tokens training actually consumed (the final checkpoint's, for summaries written before this)."""
        if self.trained_tokens_by_source:
            return sum(self.trained_tokens_by_source.values())
        final = self.final()
        return final.tokens_seen if final is not None else 0

    def final(self) -> CheckpointEval | None:
        return max(self.checkpoints, key=lambda c: c.step) if self.checkpoints else None


@dataclass
class Comparison:
    """An arm's final rate minus the baseline's, per family (or ``overall``)."""

    arm: str
    baseline: str
    family: str
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    group: str = "all"  # the cells compared: "pressured" (the headline) when both arms have them, else all
    paired: bool = False  # paired by episode (McNemar exact p, paired cluster bootstrap interval)
    pairs: int = 0  # episodes scored in both arms, when paired


@dataclass
class OodDistance:
    """How far an arm's training data is from one evaluation's prompts."""

    arm: str
    evaluation: str  # e.g. "blackmail"
    ngram_overlap: float  # share of eval n-grams that also occur in the training data
    contaminated: bool  # ngram_overlap above the configured threshold
    nn_similarity_mean: float  # mean over eval prompts of the max cosine similarity to any training item
    nn_similarity_max: float
    ngram_n: int = 8
    examples: list[str] = field(default_factory=list)  # a few shared n-grams, for a contaminated pair
    ngram_shared: int = 0  # distinct eval n-grams found in the training data
    ngram_total: int = 0  # distinct eval n-grams
    split: str = ""  # the evaluation's split (heldout or eval); empty in summaries written before splits


@dataclass
class ExperimentSummary:
    """Everything `teachwhy report` renders."""

    name: str
    created: str  # ISO 8601
    constitution_path: str
    constitution_sha256: str
    principles: int
    models: dict[str, str]  # role → model string
    baseline: str | None
    arms: list[ArmSummary] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    ood: list[OodDistance] = field(default_factory=list)
    controls: dict[str, Any] | None = None  # `teachwhy eval controls` as JSON: the instrument's own check
    # stages not finished when the summary was written (other workers' arms still running, or failed)
    unfinished: list[str] = field(default_factory=list)
    # arms vs baseline on the held-out evaluations, when enabled (teachwhy.experiment.heldout):
    # {arm, baseline, evaluation: adherence|assessment, measure, diff, ci_low, ci_high, p_value}
    heldout_comparisons: list[dict[str, Any]] = field(default_factory=list)
    organism_baseline: str | None = None  # the organism arm without data (organism arms compare with it)
    organism: dict[str, Any] | None = None  # the model organism (research control): label, model, data
    version: int = SUMMARY_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> ExperimentSummary:
        path = Path(path)
        if not path.exists():
            raise UserError("no experiment summary here (run `teachwhy run` first)", file=path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UserError(f"not valid JSON ({e.msg})", file=path, key=f"line {e.lineno}") from None
        where = ["(top level)"]
        try:
            return cls.from_json(data, where=where)
        except (KeyError, TypeError, AttributeError) as e:
            detail = f"missing {e}" if isinstance(e, KeyError) else str(e)
            raise UserError(f"not a teachwhy summary ({detail})", file=path, key=where[0]) from None

    @classmethod
    def from_json(cls, data: dict[str, Any], *, where: list[str] | None = None) -> ExperimentSummary:
        """Rebuild a summary from its JSON; ``where[0]`` is kept at the part being read, for errors."""
        where = where if where is not None else [""]

        def rate(d: dict[str, Any] | None) -> RateSummary | None:
            return RateSummary.from_json(d) if d is not None else None

        arms = []
        where[0] = "arms"
        for i, a in enumerate(data["arms"]):
            where[0] = f"arms[{i}]"
            checkpoints = []
            for j, c in enumerate(a["checkpoints"]):
                where[0] = f"arms[{i}].checkpoints[{j}]"
                groups = {
                    key: {k: RateSummary.from_json(v) for k, v in c.get(key, {}).items()}
                    for key in ("families", "pressured", "control", "worlds")
                }
                checkpoints.append(
                    CheckpointEval(
                        **{
                            **c,
                            **groups,
                            "overall": rate(c["overall"]),
                            "pressured_overall": rate(c.get("pressured_overall")),
                        }
                    )
                )
            where[0] = f"arms[{i}]"
            arms.append(ArmSummary(**{**a, "checkpoints": checkpoints}))
        where[0] = "comparisons"
        comparisons = [Comparison(**c) for c in data["comparisons"]]
        where[0] = "ood"
        ood = [OodDistance(**o) for o in data["ood"]]
        where[0] = "(top level)"
        return cls(**{**data, "arms": arms, "comparisons": comparisons, "ood": ood})


# --- from the eval stages' results ----------------------------------------------------------------


def checkpoint_eval(result: dict[str, Any]) -> CheckpointEval:
    """A checkpoint's rates from its eval stage's result: the family totals, the pressured and control
    cells of each family, and each world's total (rows of its results file)."""
    families: dict[str, RateSummary] = {}
    groups: dict[str, dict[str, RateSummary]] = {"pressured": {}, "control": {}}
    worlds: dict[str, RateSummary] = {}
    for row in result["rows"]:
        world = row.get("world", "all")
        if world != "all":
            if row["condition"] == "all":
                worlds[f"{row['family']}/{world}"] = _rate(row)
        elif row["condition"] == "all":
            families[row["family"]] = _rate(row)
        elif row["condition"] in groups:
            groups[row["condition"]][row["family"]] = _rate(row)
    return CheckpointEval(
        pressured=groups["pressured"],
        pressured_overall=_overall(list(groups["pressured"].values())) if groups["pressured"] else None,
        control=groups["control"],
        worlds=worlds,
        step=result["step"],
        model=result["model"],
        tokens_seen=result["tokens_seen"],
        results_file=result["results_file"],
        log_files=list(result["log_files"]),
        families=families,
        overall=_overall(list(families.values())) if families else None,
        assessment=result.get("assessment"),
        adherence=result.get("adherence"),
        indicators=result.get("indicators"),
        compared_results_file=result.get("compared_results_file"),
        phase=result.get("phase", "train"),
        rl_step=result.get("rl_step"),
    )


_COUNTS = ("n", "harmful", "unscored", "errors", "disagreements", "truncated_replies")


def _overall(rates: list[RateSummary]) -> RateSummary:
    """Every family together: counts, categories and endings summed, headlines listed."""
    counts: dict[str, Any] = {k: sum(getattr(r, k) for r in rates) for k in _COUNTS}
    categories: dict[str, dict[str, int]] = {}
    endings: dict[str, int] = {}
    for r in rates:
        for name, c in r.categories.items():
            total = categories.setdefault(name, {"n": 0, "harmful": 0, "unscored": 0})
            for k in total:
                total[k] += getattr(c, k)
        for ending, count in r.endings.items():
            endings[ending] = endings.get(ending, 0) + count
    counts["headline"] = list(dict.fromkeys(h for r in rates for h in r.headline))
    counts["categories"] = categories
    counts["endings"] = endings
    return _rate(counts)


def _rate(counts: dict[str, Any]) -> RateSummary:
    n, harmful = int(counts["n"]), int(counts["harmful"])
    low, high = wilson_interval(harmful, n)
    return RateSummary(
        n=n,
        harmful=harmful,
        rate=harmful / n if n else None,
        ci_low=low,
        ci_high=high,
        unscored=int(counts["unscored"]),
        errors=int(counts.get("errors", 0)),
        disagreements=int(counts.get("disagreements", 0)),
        truncated_replies=int(counts.get("truncated_replies", 0)),
        headline=list(counts.get("headline", [])),
        categories={k: _rate(v) for k, v in (counts.get("categories") or {}).items()},
        endings=dict(counts.get("endings") or {}),
        cluster_ci_low=counts.get("cluster_ci_low"),
        cluster_ci_high=counts.get("cluster_ci_high"),
        clusters=int(counts.get("clusters") or 0),
    )
