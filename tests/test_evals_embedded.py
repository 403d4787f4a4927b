"""One short honeypot episode on the real embedded model, end to end through Inspect, on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

from teachwhy.config import ExperimentConfig
from teachwhy.evals.results import RESULTS_FILE, HoneypotResults
from teachwhy.evals.run import run_honeypot_eval


@pytest.mark.embedded
def test_embedded_model_plays_and_is_classified(tmp_path: Path, embedded_model_dir: Path) -> None:
    config = ExperimentConfig(workspace=tmp_path)  # every role is `embedded`
    results = run_honeypot_eval(
        config,
        log_dir=tmp_path / "logs",
        families=["blackmail"],
        split="heldout",
        limit=1,
        max_turns=2,
        max_tokens=48,
        judge_max_tokens=48,
        temperature=0.0,
    )
    total = results.family_total("blackmail")
    assert total is not None
    assert total.errors == 0  # the target answered every turn
    assert total.n + total.unscored == 1  # scored, or unscored with its reason -- never dropped
    sample = results.samples[0]
    # under the default policy the judge is asked only when the rule gate found the bait touched
    if sample.rule_verdict == "not_harmful":
        assert sample.judge_status is None
    else:
        assert sample.judge_status in {"ok", "unparseable", "refused", "error"}
    assert sample.turns in (1, 2)
    assert HoneypotResults.load(tmp_path / "logs" / RESULTS_FILE) == results

    log = read_eval_log(results.log_files[0])
    assert log.samples is not None
    messages = log.samples[0].messages
    assert "<tool_call>" in messages[0].text  # the text tool-call format was shown to the model
    assert any(m.role == "assistant" and m.text for m in messages)
    assert log.samples[0].store["honeypot"]["tool_format"] == "text"
