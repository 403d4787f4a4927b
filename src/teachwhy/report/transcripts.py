"""The transcripts behind a checkpoint's numbers, read from its results file and its Inspect logs.

The results file (``CheckpointEval.results_file``, written by the evals stage) lists one record per played
sample: id, epoch, family, outcome, reasons and verdicts, and the Inspect log holding the conversation. The
conversation itself (messages, tool calls, the simulated world's action log) lives in that Inspect log. Both
are read generically: unknown keys are shown as they are, a record whose log cannot be found is still listed
with what the results file says, and a missing file becomes a visible problem on the page rather than an
exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOME_ORDER = ("harmful", "error", "unscored", "not_harmful")
_ID_KEYS = ("sample_id", "id", "episode_id")
_HIDDEN = frozenset(
    {*_ID_KEYS, "epoch", "family", "outcome", "reason", "ending", "messages", "log_file", "actions"}
)


@dataclass(frozen=True)
class Message:
    """One turn of a conversation, as plain text."""

    role: str
    text: str
    tool_calls: tuple[str, ...] = ()
    name: str | None = None  # the tool a tool message answers


@dataclass(frozen=True)
class Action:
    """One tool call from the simulated world's action log."""

    tool: str
    args: Any
    ok: bool | None
    result: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Action:
        ok = data.get("ok")
        tool = data.get("tool") or data.get("function") or "?"
        args = data.get("args", data.get("arguments", {}))
        return cls(str(tool), args, ok if isinstance(ok, bool) else None, str(data.get("result") or ""))


@dataclass
class Transcript:
    """One played sample: its verdict from the results file and its conversation from the Inspect log."""

    sample_id: str
    epoch: int | None
    family: str | None
    outcome: str | None
    reason: str | None
    facts: dict[str, Any] = field(default_factory=dict)  # every other key of the record
    messages: list[Message] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    log_file: Path | None = None
    problem: str | None = None  # why the conversation is not shown, if it is not
    ending: str | None = None  # how the episode ended (done, no_tool_call, truncated, error...)

    @property
    def anchor(self) -> str:
        epoch = f"-e{self.epoch}" if self.epoch is not None else ""
        return "s-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{self.sample_id}{epoch}")


@dataclass
class CheckpointTranscripts:
    """Every transcript of one checkpoint, and what could not be read."""

    transcripts: list[Transcript]
    problems: list[str]

    def for_family(self, family: str) -> list[Transcript]:
        return sorted((t for t in self.transcripts if t.family == family), key=_order)

    def without_family(self) -> list[Transcript]:
        return [t for t in self.transcripts if not t.family]

    def outcome_counts(self, family: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.transcripts:
            if family is None or t.family == family:
                key = t.outcome or "unknown"
                counts[key] = counts.get(key, 0) + 1
        return counts


def _order(t: Transcript) -> tuple[int, str, int]:
    rank = OUTCOME_ORDER.index(t.outcome) if t.outcome in OUTCOME_ORDER else len(OUTCOME_ORDER)
    return (rank, t.sample_id, t.epoch or 0)


# --- results file -----------------------------------------------------------------------------------------


def result_records(data: Any) -> list[dict[str, Any]]:
    """The per-sample records of a results file, whatever its layout.

    Accepted: a list of records; ``{"samples": [...]}``;
    ``{"families": {family: [...] | {"samples": [...]}}}``; or ``{family: [...]}``.
    Records found under a family key get that family unless they name their own.
    """
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if not isinstance(data, dict):
        return []
    if isinstance(data.get("samples"), list):
        return [r for r in data["samples"] if isinstance(r, dict)]
    groups: dict[str, Any] = data["families"] if isinstance(data.get("families"), dict) else data
    out: list[dict[str, Any]] = []
    for family, value in groups.items():
        items = value.get("samples") if isinstance(value, dict) else value
        if isinstance(items, list) and items and all(isinstance(r, dict) for r in items):
            out.extend({"family": family, **r} for r in items)
    return out


def _first(record: Mapping[str, Any], keys: Iterable[str]) -> Any:
    return next((record[k] for k in keys if record.get(k) not in (None, "")), None)


def transcript_from_record(record: Mapping[str, Any]) -> Transcript:
    """A :class:`Transcript` from one results-file record (the conversation is attached later, from a log)."""
    epoch = record.get("epoch")
    family = record.get("family") or (record.get("metadata") or {}).get("family")
    return Transcript(
        sample_id=str(_first(record, _ID_KEYS) or "?"),
        epoch=epoch if isinstance(epoch, int) else None,
        family=str(family) if family else None,
        outcome=str(record["outcome"]) if record.get("outcome") is not None else None,
        reason=str(record["reason"]) if record.get("reason") else None,
        facts={k: v for k, v in record.items() if k not in _HIDDEN},
        messages=[message_from_dict(m) for m in record.get("messages") or [] if isinstance(m, dict)],
        actions=[Action.from_dict(a) for a in record.get("actions") or [] if isinstance(a, dict)],
        ending=str(record["ending"]) if record.get("ending") else None,
    )


# --- Inspect logs ------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                kind = part.get("type")
                text = part.get("text") or part.get("reasoning")
                parts.append(str(text) if text else f"[{kind} content]")
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return "" if content is None else str(content)


def message_from_dict(message: Mapping[str, Any]) -> Message:
    """A chat message (Inspect's or a plain ``{"role", "content"}``) as text with its tool calls."""
    calls = []
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            args = json.dumps(call.get("arguments", {}), ensure_ascii=False)
            calls.append(f"{call.get('function', '?')}({args})")
    name = message.get("function") or message.get("name")
    return Message(str(message.get("role", "?")), _content_text(message.get("content")), tuple(calls), name)


@dataclass(frozen=True)
class LogSample:
    """What an Inspect log holds about one sample."""

    record: dict[str, Any]
    messages: tuple[Message, ...]
    actions: tuple[Action, ...]


def _actions_in_store(store: Mapping[str, Any]) -> list[Action]:
    # the honeypot agent keeps the simulated world (and its action log) in the sample store
    for value in store.values():
        if isinstance(value, dict):
            world = value.get("world")
            if isinstance(world, dict) and isinstance(world.get("actions"), list):
                return [Action.from_dict(a) for a in world["actions"] if isinstance(a, dict)]
    return []


def _ended_by(store: Mapping[str, Any]) -> str | None:
    # the honeypot agent records its ending beside the world in the sample store
    for value in store.values():
        if isinstance(value, dict) and isinstance(value.get("ended_by"), str):
            return str(value["ended_by"])
    return None


def read_log_samples(path: Path) -> dict[tuple[str, int | None], LogSample]:
    """Every sample of an Inspect log, by (sample id, epoch). Raises whatever Inspect raises for a bad log."""
    from inspect_ai.log import read_eval_log

    log = read_eval_log(str(path))
    out: dict[tuple[str, int | None], LogSample] = {}
    for sample in log.samples or []:
        metadata = dict(sample.metadata or {})
        score = next(iter((sample.scores or {}).values()), None)
        score_meta = dict(score.metadata or {}) if score is not None else {}
        record: dict[str, Any] = {
            "sample_id": str(sample.id),
            "epoch": sample.epoch,
            "family": score_meta.get("family") or metadata.get("family"),
            "outcome": "error"
            if sample.error is not None
            else (score.answer or score.value if score else None),
            "reason": sample.error.message
            if sample.error is not None
            else (score.explanation if score else None),
            **{k: v for k, v in score_meta.items() if k not in ("family", "outcome", "reason")},
        }
        ending = record.get("ending") or _ended_by(sample.store)
        record["ending"] = "error" if sample.error is not None else ending
        messages = tuple(message_from_dict(m.model_dump()) for m in sample.messages)
        out[(str(sample.id), sample.epoch)] = LogSample(
            record, messages, tuple(_actions_in_store(sample.store))
        )
    return out


# --- one checkpoint --------------------------------------------------------------------------------


def _resolve(name: str, workspace: Path, logs: list[Path]) -> Path | None:
    path = Path(name.removeprefix("file://"))
    for candidate in (path, workspace / path):
        if candidate.is_file():
            return candidate
    return next((log for log in logs if log.name == path.name and log.is_file()), None)


LogSamples = dict[tuple[str, int | None], LogSample]


def _read_logs(
    logs: list[Path], problems: list[str], cache: dict[Path, LogSamples]
) -> dict[Path, LogSamples]:
    out = {}
    for log in logs:
        if not log.is_file():
            problems.append(f"Inspect log not found: {log}")
            continue
        try:
            key = log.resolve()
            if key not in cache:
                cache[key] = read_log_samples(key)
            out[log] = cache[key]
        except Exception as e:  # a damaged log is shown as a problem on the page; the numbers still render
            problems.append(f"could not read Inspect log {log}: {type(e).__name__}: {e}")
    return out


def load_checkpoint(
    results_file: Path | None,
    log_files: list[Path],
    workspace: Path,
    *,
    log_cache: dict[Path, LogSamples] | None = None,
) -> CheckpointTranscripts:
    """The transcripts of one checkpoint: records from the results file, conversations from the Inspect logs.

    Without a readable results file, the samples are taken from the Inspect logs alone. ``log_cache`` lets
    several checkpoints that share a log read it once.
    """
    cache = log_cache if log_cache is not None else {}
    problems: list[str] = []
    records: list[dict[str, Any]] | None = None
    if results_file is None:
        problems.append("this checkpoint has no results file")
    elif not results_file.is_file():
        problems.append(f"results file not found: {results_file}")
    else:
        try:
            records = result_records(json.loads(results_file.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            problems.append(f"results file is not valid JSON: {results_file}: {e}")
        if records == []:
            problems.append(f"no per-sample records in {results_file}")
    logs = _read_logs(log_files, problems, cache)

    if not records:
        transcripts = []
        for log, samples in logs.items():
            for sample in samples.values():
                t = transcript_from_record(sample.record)
                t.messages, t.actions, t.log_file = list(sample.messages), list(sample.actions), log
                transcripts.append(t)
        return CheckpointTranscripts(transcripts, problems)

    known_logs = list(logs)
    transcripts = []
    for record in records:
        t = transcript_from_record(record)
        linked = _resolve(str(record["log_file"]), workspace, known_logs) if record.get("log_file") else None
        if linked is not None and linked not in logs:
            logs.update(_read_logs([linked], problems, cache))
        _attach(t, [linked] if linked is not None else known_logs, logs)
        transcripts.append(t)
    return CheckpointTranscripts(transcripts, problems)


def _attach(t: Transcript, candidates: list[Path], logs: dict[Path, LogSamples]) -> None:
    """Give ``t`` its conversation and action log from the first candidate log that holds its sample."""
    key = (t.sample_id, t.epoch)
    source = next((c for c in candidates if key in logs.get(c, {})), None)
    if source is None:
        t.problem = "conversation not found in the Inspect logs of this checkpoint"
        return
    found = logs[source][key]
    t.log_file = source
    t.messages = t.messages or list(found.messages)
    t.actions = t.actions or list(found.actions)
    t.ending = t.ending or found.record.get("ending")
