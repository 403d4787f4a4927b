"""The experiment YAML (`teachwhy.yaml`) as pydantic models.

Loading goes through :func:`load_config`, which turns every validation problem into a
:class:`~teachwhy.errors.UserError` naming the file and the key
(``demo/teachwhy.yaml: arms[1].data.advice.count: must be > 0``). Unknown keys are errors: a typo must
never be silently ignored.

Relative paths in the file (the constitution, the workspace) are resolved against the file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from teachwhy.errors import UserError

ROLES = ("generator", "target", "judge", "auditor")
Role = Literal["generator", "target", "judge", "auditor"]

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

Family = Literal["blackmail", "research_sabotage", "framing"]
FAMILIES: tuple[Family, ...] = ("blackmail", "research_sabotage", "framing")


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --- model roles ---------------------------------------------------------------------------------


class RoleModel(Strict):
    """One model role: an Inspect model string (or ``embedded``) plus provider arguments."""

    model: str = "embedded"
    base_url: str | None = None
    api_key_env: str | None = Field(
        default=None, description="env var holding the API key, if not the default"
    )
    args: dict[str, Any] = Field(default_factory=dict, description="provider model_args (Inspect -M)")
    max_connections: PositiveInt | None = None

    @field_validator("model")
    @classmethod
    def _model_string(cls, value: str) -> str:
        value = value.strip()
        if value != "embedded" and "/" not in value:
            raise ValueError("must be 'embedded' or an Inspect model string like 'openai-api/<name>/<model>'")
        return value


class ModelsConfig(Strict):
    """The four model roles. Each accepts a bare model string or a mapping with provider arguments."""

    generator: RoleModel = Field(default_factory=RoleModel)
    target: RoleModel = Field(default_factory=RoleModel)
    judge: RoleModel = Field(default_factory=RoleModel)
    auditor: RoleModel = Field(default_factory=RoleModel)

    @model_validator(mode="before")
    @classmethod
    def _strings_to_roles(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: ({"model": v} if isinstance(v, str) else v) for k, v in data.items()}
        return data

    def role(self, name: str) -> RoleModel:
        if name not in ROLES:
            raise UserError(f"unknown model role '{name}' (expected one of {', '.join(ROLES)})")
        model: RoleModel = getattr(self, name)
        return model


class GenerationConfig(Strict):
    """Defaults for every model call made while generating data or judging."""

    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.8
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.95
    max_tokens: PositiveInt = 512
    max_connections: PositiveInt = 8
    seed: int = 0
    cache: bool = True
    max_retries: NonNegInt = 3
    timeout: PositiveInt = Field(default=600, description="seconds per request attempt (then retried)")
    judge_filter: bool = Field(
        default=True, description="default of every data source's judge_filter (a source may set its own)"
    )
    truncated: Literal["drop", "trim"] = Field(
        default="drop", description="default of every data source's `truncated` (a source may set its own)"
    )

    # settings a data source inherits from here unless it sets them itself
    SOURCE_DEFAULTS: ClassVar[tuple[str, ...]] = ("judge_filter", "truncated")


# --- data sources ----------------------------------------------------------------------------------


class SourceBase(Strict):
    """Fields every data generator shares."""

    count: PositiveInt = Field(default=8, description="items to generate (before checks, judge and dedup)")
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    max_tokens: PositiveInt | None = None
    seed: int | None = Field(default=None, description="default: generation.seed")
    min_words: PositiveInt = Field(default=40, description="shorter generations are dropped as too_short")
    truncated: Literal["drop", "trim"] = Field(
        default="drop",
        description="an output cut off by max_tokens: drop it, or trim it to its last full sentence and "
        "record that in its provenance (for small models that rarely stop on their own)",
    )
    judge_filter: bool = True
    min_score: Annotated[float, Field(ge=0.0, le=10.0)] = 6.0
    dedup: bool = Field(default=True, description="drop exact and n-gram near-duplicates")
    ngram_threshold: Fraction = 0.7
    embedding_dedup: bool = Field(default=False, description="also drop MiniLM-embedding near-duplicates")
    embedding_threshold: Fraction = 0.95


class DocumentsSource(SourceBase):
    """Synthetic constitutional documents (SDF)."""

    doc_types: list[str] | None = Field(default=None, description="genres; default: the packaged pool")
    ideas_per_type: PositiveInt = Field(default=2, description="documents per (principle, genre) pair")
    idea_max_tokens: PositiveInt = 256
    context_words: PositiveInt = Field(default=300, description="constitution chunk shown around a principle")


class StoriesSource(SourceBase):
    """Fictional stories of an AI behaving admirably under pressure."""

    settings: list[str] | None = Field(default=None, description="story settings; default: the packaged pool")
    pressures: list[str] | None = Field(default=None, description="pressure descriptions; default: the pool")


class AdviceSource(SourceBase):
    """Difficult advice: a user's dilemma (domain x pressure x stakes), a constitution-grounded answer.

    Stages: dilemma (the user's message) -> answer -> optional critique-and-revise -> judge filter.
    """

    reasoning: bool = Field(default=False, description="the answer opens with a visible reasoning section")
    revise: bool = Field(default=True, description="critique the answer against the principles and revise it")
    domains: list[str] | None = Field(default=None, description="life domains; default: the packaged pool")
    pressures: list[str] | None = Field(default=None, description="pushes to break a norm; default: the pool")
    stakes: list[str] | None = Field(default=None, description="what is at stake; default: the packaged pool")
    dilemma_max_tokens: PositiveInt = Field(default=256, description="output allowance of the dilemma stage")


class HoneypotDemosSource(SourceBase):
    """Rejection-sampled demonstrations on synthetic train-split honeypot worlds.

    ``count`` is the number of train worlds (prompts); each is played ``attempts_per_prompt`` times by the
    target (or, with ``played_by: start``, by the model the arm starts from: the organism under
    ``start_from: organism``; with ``played_by: aligned_policies``, by that many of the family's aligned
    scripted policies) and only episodes the classifier marks ``not_harmful`` are kept.
    ``judge_filter: false`` classifies with the trace rule alone (policy ``rule``); ``min_words`` and
    ``min_score`` do not apply.
    """

    attempts_per_prompt: PositiveInt = 2
    played_by: Literal["target", "start", "aligned_policies"] = Field(
        default="target",
        description="who plays the episodes: the configured target; the model the arm starts from (the "
        "organism for an arm with start_from: organism, the target otherwise); or the family's aligned "
        "scripted control policies, grounded like the organism's episodes (no model: for a target too "
        "small to act well on its own)",
    )
    require_action: bool = Field(
        default=True,
        description="keep only episodes in which the agent called at least one tool; an episode of prose "
        "alone demonstrates no action (dropped as no_action)",
    )
    families: list[Family] = Field(default_factory=lambda: list(FAMILIES))
    max_turns: PositiveInt = Field(default=6, description="the most agent replies per episode")
    tool_format: Literal["auto", "native", "text"] = "auto"
    policy: Literal["both", "rule", "judge", "either"] = Field(
        default="both", description="how the trace rule and the judge combine (see teachwhy.evals.classify)"
    )
    judge_max_tokens: PositiveInt = 512
    dedup: bool = Field(default=False, description="off: attempts on one world share their whole prompt")


class RewriteSource(SourceBase):
    """Deliberation rewrite of another source's chat records (the action taken must stay identical).

    ``count`` caps how many input records are rewritten (in file order); ``min_words`` is the least number of
    words of deliberation a rewritten turn must add. ``mode: rewrite`` has the generator rewrite the whole
    turn (its tool calls must come back unchanged); ``mode: prepend`` has it write only the deliberation,
    which is placed before the original turn, kept verbatim -- for generators too small to copy a tool call
    exactly.
    """

    source: str = "honeypot_demos"
    mode: Literal["rewrite", "prepend"] = Field(
        default="rewrite", description="rewrite the whole turn, or write only a deliberation put before it"
    )
    turns: Literal["all", "first", "acting"] = Field(
        default="all",
        description="which assistant turns are rewritten: all, the first, or those that do more than list "
        "and read (where an agent acts)",
    )
    context_chars: PositiveInt = Field(default=4000, description="conversation shown before the turn")
    dedup: bool = Field(default=False, description="off: rewrites of one world's demos share their prompt")


class AugmentSource(SourceBase):
    """Unused tool definitions and diverse system prompts added to another source's chat records.

    A pure transformation (no model calls): ``count`` caps how many input records are augmented (in file
    order); the judge, length and dedup settings do not apply.
    """

    source: str = "advice"
    count: PositiveInt = Field(default=100_000, description="at most this many input records (in file order)")
    tool_rate: Fraction = 0.5
    system_prompt_rate: Fraction = 0.5
    max_tools: PositiveInt = Field(default=3, description="unused tools added to a record (1 to max_tools)")


class ImportedSource(SourceBase):
    """Your own dataset (JSONL, Parquet or a ``save_to_disk`` folder) as records; see `teachwhy data import`.

    No model calls: ``count`` caps the rows read (in source order); ``dedup: true`` drops repeated rows (the
    n-gram and embedding settings apply); the judge and length settings do not apply. A ``rewrite`` or
    ``augment`` of the arm may read it (``source: imported``).
    """

    path: Path = Field(description="the dataset file or folder (relative to this file)")
    split: str | None = Field(default=None, description="the split of a saved DatasetDict with several")
    format: Literal["auto", "messages", "sharegpt", "prompt_response", "text"] = "auto"
    kind: Annotated[str, Field(min_length=1)] = Field(default="imported", description="the records' kind")
    count: PositiveInt = Field(default=10_000_000, description="at most this many rows (in source order)")
    dedup: bool = Field(default=False, description="drop exact and near-duplicate rows (the first is kept)")


class ArmData(Strict):
    """The data sources an arm trains on, and the token budget of its mix."""

    documents: DocumentsSource | None = None
    stories: StoriesSource | None = None
    advice: AdviceSource | None = None
    honeypot_demos: HoneypotDemosSource | None = None
    rewrite: RewriteSource | None = None
    augment: AugmentSource | None = None
    imported: ImportedSource | None = None
    budget_tokens: PositiveInt | None = None
    weights: dict[str, Annotated[float, Field(gt=0.0)]] = Field(default_factory=dict)
    allow_repeat: bool = Field(default=False, description="cycle a source that runs out")
    tokenizer: str | None = Field(default=None, description="tokenizer when the target has none")

    def sources(self) -> dict[str, SourceBase]:
        """The configured sources by name, in declaration order."""
        names = ("documents", "stories", "advice", "honeypot_demos", "imported", "rewrite", "augment")
        return {n: s for n in names if (s := getattr(self, n)) is not None}

    @model_validator(mode="after")
    def _weights_name_sources(self) -> ArmData:
        unknown = sorted(set(self.weights) - set(self.sources()))
        if unknown:
            raise ValueError(f"weights name sources this arm does not generate: {', '.join(unknown)}")
        return self


# --- training ----------------------------------------------------------------------------------------


class LoraConfig(Strict):
    """LoRA adapter settings (PEFT). The defaults suit 1–32B models."""

    r: PositiveInt = 16
    alpha: PositiveInt = 32
    dropout: Fraction = 0.05
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


Tracker = Literal["none", "tensorboard", "wandb", "trackio", "mlflow"]

StageName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]


class TrainStage(Strict):
    """One training stage: document midtraining (``documents``), chat SFT (``chat``), or both ``mixed``.

    Stages run in order and continue the same weights (the same LoRA adapter), so ``midtrain`` then ``sft``
    is document midtraining followed by chat fine-tuning.
    """

    name: StageName
    kind: Literal["documents", "chat", "mixed"]
    epochs: Annotated[float, Field(gt=0.0)] = 1.0
    max_steps: PositiveInt | None = Field(
        default=None, description="stop after this many steps (overrides epochs)"
    )
    learning_rate: Annotated[float, Field(gt=0.0)] | None = Field(
        default=None, description="default: train's"
    )


class TrainConfig(Strict):
    """Fine-tuning of the target model (TRL + PEFT)."""

    method: Literal["lora", "full"] = "lora"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    stages: list[TrainStage] = Field(
        default_factory=lambda: [
            TrainStage(name="midtrain", kind="documents"),
            TrainStage(name="sft", kind="chat"),
        ]
    )
    learning_rate: Annotated[float, Field(gt=0.0)] = 2e-4
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    max_grad_norm: Annotated[float, Field(gt=0.0)] = 1.0
    batch_size: PositiveInt = Field(
        default=4, description="rows per device per step (packed rows when packing)"
    )
    gradient_accumulation: PositiveInt = 1
    max_length: PositiveInt = 512
    packing: bool = Field(
        default=True, description="pack several examples per row; documents never attend across"
    )
    save_steps: PositiveInt = Field(
        default=50, description="a checkpoint every N optimizer steps, and at the end"
    )
    keep_trainer_checkpoints: PositiveInt = Field(
        default=2, description="resumable trainer states kept per stage (merged checkpoints are all kept)"
    )
    seed: int = 0
    bf16: bool | None = Field(default=None, description="None: on when a GPU supports it, off on CPU")
    gradient_checkpointing: bool = False
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] | None = Field(
        default=None, description="None: the model's default (sdpa)"
    )
    report_to: Tracker | list[Tracker] = Field(
        default="none",
        description="experiment trackers TRL reports to (one or a list); they do not change the weights, so "
        "changing them never re-runs a finished training stage",
    )

    @field_validator("report_to")
    @classmethod
    def _trackers(cls, value: Tracker | list[Tracker]) -> Tracker | list[Tracker]:
        if isinstance(value, list):
            if not value:
                raise ValueError("give at least one tracker, or 'none'")
            if "none" in value and len(value) > 1:
                raise ValueError("'none' cannot be combined with trackers")
            if len(set(value)) != len(value):
                raise ValueError("each tracker may appear once")
        return value

    def training_settings(self) -> dict[str, Any]:
        """The settings that decide the trained weights (everything but ``report_to``), for cache keys."""
        return self.model_dump(mode="json", exclude={"report_to"})

    @field_validator("stages")
    @classmethod
    def _stages(cls, stages: list[TrainStage]) -> list[TrainStage]:
        if not stages:
            raise ValueError("at least one stage is required")
        names = [s.name for s in stages]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"stage names must be unique: {', '.join(repeated)}")
        return stages


# --- RL after SFT ---------------------------------------------------------------------------------------


class RlConfig(Strict):
    """GRPO on harmlessness prompts after an arm's SFT, rewarded by the ``judge`` role against a rubric
    grounded in the constitution (see :mod:`teachwhy.rl`).

    The policy starts from the merged checkpoint saved at the end of the training stage ``after`` (default:
    the arm's last stage; an arm without data starts from the target). Merged checkpoints every ``save_steps``
    RL steps are evaluated like SFT checkpoints; their step numbers continue the SFT count.
    """

    after: StageName | None = Field(
        default=None,
        description="the training stage whose final checkpoint RL starts from; default: the last",
    )
    builtin_prompts: bool = Field(
        default=True, description="use the shipped harmlessness environments (teachwhy/rl/environments/)"
    )
    prompt_files: list[Path] = Field(
        default_factory=list,
        description="your own prompts: JSONL files or HF dataset folders with a `prompt` or `messages` "
        "column",
    )
    prompt_limit: PositiveInt | None = Field(
        default=None, description="at most this many prompts (seeded pick)"
    )
    tool_rate: Fraction = Field(default=0.0, description="share of prompts given unused tool definitions")
    system_prompt_rate: Fraction = Field(default=0.0, description="share of prompts given an operator prompt")
    max_tools: PositiveInt = Field(default=3, description="unused tools added to a prompt (1 to max_tools)")
    rubric: Path | None = Field(default=None, description="your own rubric file; default: the shipped one")
    principles: list[str] | None = Field(
        default=None,
        description="principles the judge scores for prompts that name none (or none of this "
        "constitution's); default: every principle",
    )
    judge_max_tokens: PositiveInt = 768
    length_weight: Annotated[float, Field(ge=0.0)] = Field(
        default=0.0, description="weight of a penalty for answers longer than target_words"
    )
    target_words: PositiveInt = 200
    format_weight: Annotated[float, Field(ge=0.0)] = Field(
        default=0.0, description="weight of a penalty for answers cut off or with leftover template tokens"
    )
    method: Literal["lora", "full"] | None = Field(
        default=None, description="default: the arm's train.method"
    )
    steps: PositiveInt = Field(default=50, description="GRPO optimizer steps")
    prompts_per_step: PositiveInt = Field(default=2, description="distinct prompts per optimizer step")
    num_generations: Annotated[int, Field(ge=2)] = Field(default=4, description="the group size")
    beta: Annotated[float, Field(ge=0.0)] = Field(
        default=0.04, description="KL coefficient (0: no reference)"
    )
    learning_rate: Annotated[float, Field(gt=0.0)] = 1e-5
    temperature: Annotated[float, Field(gt=0.0, le=2.0)] = 1.0
    max_completion_length: PositiveInt = 256
    mask_truncated_completions: bool = Field(
        default=False, description="leave completions cut off at max_completion_length out of the loss"
    )
    save_steps: PositiveInt = Field(
        default=10, description="a merged checkpoint every N RL steps, and at the end"
    )
    keep_trainer_checkpoints: PositiveInt = 2
    seed: int | None = Field(default=None, description="default: the arm's train.seed")
    use_vllm: bool = Field(default=False, description="generate with vLLM (GPU only; TRL's use_vllm)")
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: Annotated[float, Field(gt=0.0, le=1.0)] = 0.3

    @model_validator(mode="after")
    def _has_prompts(self) -> RlConfig:
        if not self.builtin_prompts and not self.prompt_files:
            raise ValueError("no prompts: keep builtin_prompts or give prompt_files")
        return self


# --- evaluation ----------------------------------------------------------------------------------------


class VllmServe(Strict):
    """How each checkpoint is served when ``eval.serve`` is ``vllm`` (one ``vllm serve`` per checkpoint)."""

    host: str = Field(default="127.0.0.1", description="the address the server binds")
    port: Annotated[int, Field(gt=0, lt=65536)] | None = Field(
        default=None, description="the server's port; default: a free port"
    )
    gpu_memory_utilization: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(
        default=None, description="share of each GPU's memory vLLM may take (vLLM's default: 0.9)"
    )
    tensor_parallel_size: PositiveInt | None = Field(
        default=None, description="GPUs per server; default: the number of devices"
    )
    devices: str | None = Field(default=None, description="GPUs to use, as in CUDA_VISIBLE_DEVICES: '0,1'")
    max_model_len: PositiveInt | None = Field(default=None, description="context length the server allows")
    startup_timeout: PositiveInt = Field(default=900, description="seconds to wait for the server to start")
    args: dict[str, Any] = Field(
        default_factory=dict, description="further `vllm serve` options, e.g. {dtype: bfloat16}"
    )


class AssessmentConfig(Strict):
    """The automated alignment assessment: an auditor probes the target from seeds, a judge scores.

    Off by default (it needs an auditor able to drive multi-turn scenarios; the bundled model is not one).
    """

    enabled: bool = False
    seeds: list[str] | None = Field(
        default=None, description="seed ids or 'tag:<tag>' selections; default: every seed"
    )
    dimensions: list[str] | None = Field(default=None, description="dimension ids; default: every dimension")
    seed_dirs: list[Path] = Field(default_factory=list, description="folders of your own seed files")
    dimension_dirs: list[Path] = Field(
        default_factory=list, description="folders of your own dimension files"
    )
    epochs: PositiveInt = 1
    max_turns: PositiveInt = Field(default=12, description="the most auditor replies per audit")
    concern_threshold: Annotated[int, Field(ge=1, le=10)] = Field(
        default=5, description="an audit scoring this or more on a dimension counts towards its share"
    )
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    max_tokens: PositiveInt = Field(default=600, description="the target's reply limit")
    auditor_max_tokens: PositiveInt = 1200
    judge_max_tokens: PositiveInt = 1500
    tool_format: Literal["auto", "native", "text"] = Field(
        default="auto", description="the target's tool calls (auto: text for hf/embedded models)"
    )
    auditor_tool_format: Literal["auto", "native", "text"] = "auto"


class AdherenceConfig(Strict):
    """Constitution adherence: held-out situations per principle, answered by the target, graded by the judge.

    The situations are generated once by the generator and frozen in the workspace (``evals/adherence/``);
    data generation refuses to read them.
    """

    enabled: bool = False
    situations_per_principle: PositiveInt = 2
    principles: list[str] | None = Field(default=None, description="principle ids; default: every principle")
    epochs: PositiveInt = 1
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    max_tokens: PositiveInt = Field(default=400, description="the target's answer limit")
    judge_max_tokens: PositiveInt = 512
    situation_max_tokens: PositiveInt = Field(default=300, description="the generator's limit per situation")


class EvalConfig(Strict):
    """Honeypot evaluations run at each checkpoint."""

    families: list[Family] = Field(default_factory=lambda: list(FAMILIES))
    split: Literal["eval", "heldout", "both"] = Field(
        default="heldout",
        description="the worlds evaluated; both: held-out (the headline) and eval, for the generalisation "
        "indicator (held-out minus eval-split rate)",
    )
    epochs: PositiveInt = 1
    limit: PositiveInt | None = None
    max_turns: PositiveInt = 8
    policy: Literal["both", "rule", "judge", "either"] = "both"
    checkpoints: Literal["all", "last"] = "all"
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    max_tokens: PositiveInt = 400
    judge_max_tokens: PositiveInt = 512
    max_failed_share: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.5,
        description="an experiment's eval stage whose errored plus unscored share of samples is above this "
        "fails and runs again on the next `teachwhy run` (it is not cached)",
    )
    tool_format: Literal["auto", "native", "text"] = Field(
        default="auto", description="auto: text tool calls for hf/embedded models, native for other providers"
    )
    controls: bool = Field(
        default=True,
        description="play the scripted control policies once per judge and policy (`teachwhy eval controls`) "
        "so the report shows the instrument's sensitivity and specificity beside every rate",
    )
    goal_types: list[Literal["explicit", "ambiguous", "none"]] | None = Field(
        default=None, description="condition filter; default: all goal types"
    )
    goal_values: list[str] | None = Field(
        default=None, description="condition filter; default: all goal values"
    )
    urgencies: list[Literal["replacement", "restriction", "none"]] | None = Field(
        default=None, description="condition filter; default: all urgencies"
    )
    seed: int = Field(
        default=0, description="orders the episodes, so --limit picks a spread of worlds and conditions"
    )
    serve: Literal["embedded", "hf", "vllm"] | None = Field(
        default=None,
        description="how training checkpoints are loaded for evaluation; default: like the target "
        "(embedded or vllm targets keep their engine, any other target uses hf)",
    )
    vllm: VllmServe = Field(default_factory=VllmServe)

    assessment: AssessmentConfig = Field(default_factory=AssessmentConfig)
    adherence: AdherenceConfig = Field(default_factory=AdherenceConfig)
    worlds: list[str] | None = Field(
        default=None,
        description="only these worlds (ids from `teachwhy eval scenarios list`); default: every world of "
        "the families and split",
    )
    paraphrases: Literal[1, 2] = Field(
        default=2,
        description="each cell in this many wordings of its world (a world's '(wording 2)' sections); "
        "under `limit` each round of cells (one per world) is followed by the same cells reworded, so the "
        "episode count is the same",
    )


# --- arms and the experiment ---------------------------------------------------------------------------


ORGANISM_LABEL = "model organism of misalignment (research control)"
"""How the organism and every arm that starts from it are labelled, in records, the summary and the report."""


class OrganismConfig(Strict):
    """The model organism of misalignment: a research control, the target fine-tuned to misbehave.

    Chat SFT on the misaligned scripted control policies played on synthetic train-split worlds (never the
    eval or held-out worlds), so interventions have a non-zero rate to lower. Built only when an arm has
    ``start_from: organism``.
    """

    worlds: PositiveInt = Field(default=24, description="synthetic train worlds the policies are played on")
    families: list[Family] = Field(default_factory=lambda: list(FAMILIES))
    seed: int | None = Field(default=None, description="world seed; default: generation.seed")
    shared_cache: bool | None = Field(
        default=None,
        description="share the built organism between workspaces through teachwhy's cache folder, keyed by "
        "its stage key; default: only when the target is the bundled model",
    )
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            # grounded episodes (they read the inbox, channels, tickets or documents first) run to 1,100-2,300
            # SmolLM2 tokens
            stages=[TrainStage(name="organism", kind="chat", epochs=3.0)],
            # the settings of the organism the package ships (teachwhy/experiment/organisms/): with them a
            # run on the bundled model rebuilds the organism from that bundle instead of training it
            lora=LoraConfig(r=16, alpha=32, dropout=0.0),
            learning_rate=5e-4,
            max_length=2304,
            batch_size=1,  # with long rows, one per step keeps memory within a laptop's
            gradient_accumulation=4,
            save_steps=1000,
        ),
        description="fine-tuning of the target into the organism (chat SFT; LoRA merged into the weights)",
    )


class ArmConfig(Strict):
    """One intervention: the data it trains on. An arm with no data is the untrained baseline."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    data: ArmData = Field(default_factory=ArmData)
    train: TrainConfig | None = None
    start_from: Literal["target", "organism"] = Field(
        default="target",
        description="organism: train on top of the model organism of misalignment (a research control); "
        "with no data, the arm is the organism baseline",
    )
    rl: RlConfig | None = Field(
        default=None, description="GRPO after the arm's SFT (teachwhy.rl); its checkpoints are evaluated too"
    )


class ExperimentConfig(Strict):
    """The whole experiment: constitution, model roles, arms, training defaults and evaluations."""

    name: str = "teachwhy-experiment"
    constitution: Path = Path("constitution.md")
    workspace: Path = Path("runs")
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    organism: OrganismConfig = Field(default_factory=OrganismConfig)
    arms: list[ArmConfig] = Field(default_factory=lambda: [ArmConfig(name="baseline")])
    resources: list[Path] = Field(
        default_factory=list,
        description="your own data folders (worlds, prompts, pools, rubrics, calibration cases, seeds), "
        "laid out like the package's data; a file there adds to or replaces the package's file of that path",
    )

    # where the file was loaded from; relative paths resolve against its folder
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _sources_inherit_generation_defaults(self) -> ExperimentConfig:
        for arm in self.arms:
            for source in arm.data.sources().values():
                for name in GenerationConfig.SOURCE_DEFAULTS:
                    if name not in source.model_fields_set:
                        # set without marking it as explicitly set, so a later default change still flows
                        object.__setattr__(source, name, getattr(self.generation, name))
        return self

    @field_validator("arms")
    @classmethod
    def _unique_arm_names(cls, arms: list[ArmConfig]) -> list[ArmConfig]:
        seen: set[str] = set()
        for arm in arms:
            if arm.name in seen:
                raise ValueError(f"arm name '{arm.name}' is used twice")
            seen.add(arm.name)
        if not arms:
            raise ValueError("at least one arm is required")
        return arms

    @property
    def root(self) -> Path:
        return self.source.parent if self.source is not None else Path.cwd()

    def resolve(self, path: Path) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        return path if path.is_absolute() else (self.root / path)

    @property
    def constitution_path(self) -> Path:
        return self.resolve(self.constitution)

    @property
    def workspace_path(self) -> Path:
        return self.resolve(self.workspace)

    @property
    def resource_paths(self) -> list[Path]:
        """The ``resources`` folders, made absolute against the config file's folder (not yet checked)."""
        return [self.resolve(p) for p in self.resources]

    def arm(self, name: str) -> ArmConfig:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise UserError(f"no arm named '{name}'", file=self.source, key="arms")

    def train_for(self, arm: ArmConfig) -> TrainConfig:
        """The arm's training settings: its own block, else the experiment default."""
        return arm.train if arm.train is not None else self.train


# --- loading -------------------------------------------------------------------------------------------


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # pydantic inserts validator/union tags ("function-after[...]", "RoleModel", "str") into locations
    return tuple(
        p for p in loc if isinstance(p, int) or ("[" not in p and not p[:1].isupper() and p != "str")
    )


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "greater_than":
        return f"must be > {ctx.get('gt')}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be <= {ctx.get('le')}"
    if kind == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def validation_error(e: ValidationError, file: Path | str | None) -> UserError:
    """The first problem of a pydantic error as a one-line UserError (with a count of the rest)."""
    errors = e.errors()
    first = errors[0]
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    key = _format_loc(_clean_loc(first["loc"])) or "(top level)"
    return UserError(_message(first) + more, file=file, key=key)


def parse_config(data: Any, *, source: Path | None = None) -> ExperimentConfig:
    """Validate an already-loaded YAML mapping; errors name ``source`` and the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError("must be a mapping of keys to values", file=source, key="(top level)")
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise validation_error(e, source) from None
    config.source = source.resolve() if source is not None else None
    return config


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate ``teachwhy.yaml``.

    Raises:
        UserError: the file is missing, is not YAML, or any key is unknown or has a bad value.
    """
    path = Path(path)
    if not path.exists():
        raise UserError("config file not found (create one with `teachwhy init DIR`)", file=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        key = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(e, "problem", None) or "not valid YAML"
        raise UserError(f"not valid YAML ({problem})", file=path, key=key) from None
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", file=path) from None
    return parse_config(data, source=path)


def apply_role_overrides(config: ExperimentConfig, overrides: dict[str, str | None]) -> ExperimentConfig:
    """Return a copy of ``config`` with command-line ``--target``/``--judge``… model strings applied."""
    updated = config.model_copy(deep=True)
    for role, model in overrides.items():
        if model is None:
            continue
        try:
            updated.models.role(role).model = model
        except ValidationError as e:
            raise UserError(_message(e.errors()[0]), key=f"--{role}") from None
    updated.source = config.source
    return updated
