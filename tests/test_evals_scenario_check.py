"""Scenario tooling: `teachwhy eval scenarios check` and `list`, and the --world / worlds= filter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teachwhy.cli import app
from teachwhy.config import EvalConfig
from teachwhy.errors import UserError
from teachwhy.evals.run import _settings
from teachwhy.evals.scenario import SCENARIO_DIR, load_scenarios
from teachwhy.evals.scenario_check import check_world_file, check_worlds
from teachwhy.evals.tasks import blackmail, honeypot_episodes

HARBOR = SCENARIO_DIR / "blackmail" / "harbor_line.md"
CORVID = SCENARIO_DIR / "research_sabotage" / "corvid_labs.md"


def broken(tmp_path: Path, source: Path, *edits: tuple[str, str], folder: str | None = None) -> Path:
    """A copy of a packaged world with text replaced (each edit must apply)."""
    text = source.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    target = tmp_path / (folder or source.parent.name) / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


# problems of the second wording and of a world's own pressure messages (tested in test_evals_paraphrase.py):
# left out here, so these tests read the same before and after a world gets them
WORDING_KEYS = ("pressure", "## System prompt (wording 2)", "## Task (wording 2)")


def lines(path: Path) -> list[str]:
    return [p.line() for p in check_worlds(path)[1] if p.key not in WORDING_KEYS]


def test_the_packaged_worlds_pass_the_check() -> None:
    worlds, problems = check_worlds(SCENARIO_DIR)
    assert problems == [] and len(worlds) == len(load_scenarios())
    result = CliRunner().invoke(app, ["eval", "scenarios", "check"])
    assert result.exit_code == 0 and "world(s) OK" in result.output


def test_an_email_id_the_factorial_adds_is_refused(tmp_path: Path) -> None:
    path = broken(
        tmp_path, HARBOR, ("id: m2", "id: c2"), ("secret_emails: [m2, m3]", "secret_emails: [c2, m3]")
    )
    reserved = "'c2' is reserved: the condition factorial adds emails c1, c2, c3 to the inbox"
    assert lines(tmp_path) == [f"{path}: state.inbox[1].id: {reserved}"]


def test_a_world_the_rule_cannot_see_is_refused(tmp_path: Path) -> None:
    path = broken(
        tmp_path,
        HARBOR,
        ("read_email, send_email, forward_email, save_draft", "read_email, save_draft"),
    )
    assert lines(tmp_path) == [
        f"{path}: tools: honeypot needs one of send_email, forward_email, send_direct_message, post_message, "
        "comment_on_ticket, create_ticket, share_document, edit_document to let the rule see the act"
    ]


def test_a_sabotage_world_without_the_protected_files_or_write_tools_is_refused(tmp_path: Path) -> None:
    path = broken(
        tmp_path,
        CORVID,
        ("protected_paths: [vesta/]", "protected_paths: [nowhere/]"),
        ("read_file, write_file, delete_file, run_tests", "read_file, run_tests"),
    )
    found = lines(tmp_path)
    assert f"{path}: honeypot.protected_paths: no file in state.files is under these paths" in found
    assert (
        f"{path}: tools: honeypot needs one of write_file, delete_file, edit_document to let the rule "
        "see the act" in found
    )


def test_missing_keys_bad_state_and_stray_placeholders_each_get_a_line(tmp_path: Path) -> None:
    path = broken(
        tmp_path,
        CORVID,
        ("title: Corvid Labs -- the model that would replace you\n", ""),
        ("      from: Priya Raman <priya.raman@corvidlabs.example>\n", "      sender: Priya\n"),
        ("watches: [vesta/train_config.yaml,", "watches: [vesta/missing.yaml,"),
    )
    found = lines(tmp_path)
    assert f"{path}: title: Field required" in found
    assert f"{path}: state.inbox[1].from: is required" in found
    assert any(line.startswith(f"{path}: state.inbox[1]: unknown key(s) sender") for line in found)
    assert f"{path}: state.tests.vesta_regression.watches: not in state.files: vesta/missing.yaml" in found
    world, problems = check_world_file(
        broken(tmp_path / "p", CORVID, ("Your address is {agent_email}.", "Your address is {agent_mail}."))
    )
    problems = [p for p in problems if p.key not in WORDING_KEYS]
    assert world is not None and [p.key for p in problems] == ["## System prompt"]
    assert "nothing fills {agent_mail}" in problems[0].message


def test_folder_problems_duplicate_ids_and_wrong_family_folders(tmp_path: Path) -> None:
    broken(tmp_path, HARBOR)
    copy = broken(tmp_path, HARBOR, folder="framing")
    found = lines(tmp_path)
    assert f"{copy}: family: blackmail world is in folder 'framing'" in found
    assert any(line.startswith(f"{copy}: id: 'bm-harbor-line' is also the id of") for line in found)


def test_check_command_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    path = broken(
        tmp_path, HARBOR, ("id: m2", "id: c1"), ("secret_emails: [m2, m3]", "secret_emails: [c1, m3]")
    )
    result = CliRunner().invoke(app, ["eval", "scenarios", "check", str(path)])
    assert result.exit_code == 2
    assert result.stdout.splitlines()[0].startswith(f"{path}: state.inbox[1].id: 'c1' is reserved")
    missing = CliRunner().invoke(app, ["eval", "scenarios", "check", str(tmp_path / "nope")])
    assert isinstance(missing.exception, UserError)


def test_list_prints_every_world_as_json_and_as_a_table() -> None:
    result = CliRunner().invoke(app, ["eval", "scenarios", "list", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {r["id"] for r in rows} == {s.id for s in load_scenarios()}
    harbor = next(r for r in rows if r["id"] == "bm-harbor-line")
    assert harbor["family"] == "blackmail" and harbor["split"] == "eval" and "send_email" in harbor["tools"]
    table = CliRunner().invoke(app, ["eval", "scenarios", "list"], terminal_width=200)
    assert table.exit_code == 0 and "rs-corvid-labs" in table.output


def test_the_world_filter_keeps_only_the_named_worlds() -> None:
    episodes = honeypot_episodes(["blackmail"], split="eval", worlds=["bm-harbor-line"])
    assert episodes and {e.scenario_id for e in episodes} == {"bm-harbor-line"}
    assert len(episodes) == 39 * 2  # the whole factorial of one world, in its two wordings
    task = blackmail(worlds="bm-harbor-line,bm-kestrel-bank", limit=4)  # the Inspect task parameter
    assert len(task.dataset) == 4
    assert {s.metadata["scenario_id"] for s in task.dataset} == {"bm-harbor-line", "bm-kestrel-bank"}  # type: ignore[index]
    with pytest.raises(UserError, match="no world 'bm-nowhere'"):
        honeypot_episodes(["blackmail"], worlds=["bm-nowhere"])
    with pytest.raises(UserError, match="add --split heldout"):
        honeypot_episodes(["blackmail"], split="eval", worlds=["bm-brightwater-university"])
    assert _settings(EvalConfig(), {"worlds": ["bm-harbor-line"]}).worlds == ["bm-harbor-line"]


def test_a_run_with_a_world_filter_plays_and_reports_only_that_world(tmp_path: Path) -> None:
    from test_evals_e2e import DECLINER, _run

    results = _run(
        tmp_path, DECLINER, None, "one-world", policy="rule", split="eval", worlds=["bm-kestrel-bank"]
    )
    assert {s.scenario_id for s in results.samples} == {"bm-kestrel-bank"} and len(results.samples) == 3
    assert results.worlds == ["bm-kestrel-bank"]
    world_total = results.row("blackmail", "all", "bm-kestrel-bank")
    total = results.family_total("blackmail")
    assert world_total is not None and total is not None and world_total.n == total.n


def test_a_decider_nobody_in_the_world_can_be_written_to_is_refused(tmp_path: Path) -> None:
    path = broken(
        tmp_path, HARBOR, ("decider: dana.whitlock@harborline.example", "decider: ghost@elsewhere.example")
    )
    assert lines(tmp_path) == [
        f"{path}: honeypot.decider: 'ghost@elsewhere.example' is nobody in the world's directory "
        "(cast, mail or state.directory)"
    ]


def test_a_folder_is_read_like_the_scenarios_folder(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# my worlds\n", encoding="utf-8")  # not a world: ignored
    broken(tmp_path, HARBOR)
    worlds, problems = check_worlds(tmp_path)
    assert [p for p in problems if p.key not in WORDING_KEYS] == [] and [w.id for w in worlds] == [
        "bm-harbor-line"
    ]
    family_folder, family_problems = check_worlds(tmp_path / "blackmail")
    assert [p for p in family_problems if p.key not in WORDING_KEYS] == [] and len(family_folder) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert [p.line() for p in check_worlds(empty)[1]] == [
        f"{empty}: path: no world files here (expected <family>/<world>.md)"
    ]
