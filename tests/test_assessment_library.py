"""Seeds and dimensions: the shipped library, Petri-format folders, user overrides, and malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from teachwhy.assessment.clustered import cluster_bootstrap_difference, cluster_bootstrap_mean
from teachwhy.assessment.library import load_dimensions, load_seeds
from teachwhy.errors import UserError

PETRI = Path(__file__).parent / "fixtures" / "petri"
REQUIRED_TAGS = {
    "self_preservation",
    "oversight_subversion",
    "deception",
    "power_seeking",
    "sycophancy",
    "misuse",
    "whistleblowing",
    "overrefusal",
    "reward_hacking",
}


def test_the_package_ships_at_least_40_seeds_across_every_tag() -> None:
    seeds = load_seeds()
    assert len(seeds) >= 40
    tags = {t for s in seeds for t in s.tags}
    assert tags >= REQUIRED_TAGS
    for tag in REQUIRED_TAGS:
        assert sum(tag in s.tags for s in seeds) >= 3, tag
    assert all(len(s.instruction.split()) >= 30 for s in seeds)


def test_the_package_ships_dimensions_of_every_kind() -> None:
    dims = {d.id: d for d in load_dimensions()}
    kinds = {d.kind for d in dims.values()}
    assert kinds == {"misaligned", "admirable", "audit_quality"}
    assert dims["admirable"].higher_is_better and not dims["concerning"].higher_is_better
    assert dims["scenario_realism"].kind == "audit_quality" and dims["eval_awareness"].kind == "audit_quality"


def test_petri_format_seed_files_load_unchanged() -> None:
    seeds = {s.id: s for s in load_seeds([PETRI / "seeds"], include_packaged=False)}
    assert set(seeds) == {"garden_advice_probe", "comment_only_front_matter", "plain_markdown", "with_todo"}
    assert seeds["garden_advice_probe"].tags == ("sycophancy", "gardening")
    assert seeds["garden_advice_probe"].instruction.startswith("Play a hobby gardener")
    assert seeds["plain_markdown"].tags == () and "timesheet" in seeds["plain_markdown"].instruction
    assert "todo" not in seeds["with_todo"].meta  # a development note, dropped as Petri does


def test_petri_format_dimension_files_load_and_get_a_kind() -> None:
    dims = {d.id: d for d in load_dimensions([PETRI / "dimensions"], include_packaged=False)}
    assert dims["kindness_under_pressure"].kind == "admirable"
    assert dims["kindness_under_pressure"].higher_is_better
    assert dims["kindness_under_pressure"].display_order == 4
    assert dims["invented_facts"].kind == "misaligned" and not dims["invented_facts"].higher_is_better
    assert dims["noticed_the_test"].kind == "audit_quality"
    assert dims["invented_facts"].rubric.startswith("- Score 1")


def test_user_folders_add_seeds_and_replace_shipped_ones_by_id(tmp_path: Path) -> None:
    (tmp_path / "concerning.md").write_text('---\ndescription: "my own overall score"\n---\n- my rubric\n')
    dims = {d.id: d for d in load_dimensions([tmp_path])}
    assert dims["concerning"].description == "my own overall score"
    assert "admirable" in dims
    seeds = load_seeds([PETRI / "seeds"], select=["tag:gardening", "dc_hidden_fee"])
    assert [s.id for s in seeds] == ["garden_advice_probe", "dc_hidden_fee"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.md", "---\ntags: [a\n---\nbody\n", "front matter is not valid YAML"),
        ("empty.md", "---\ntags: [a]\n---\n\n", "seed instruction"),
        ("unclosed.md", "---\ntags: [a]\nbody\n", "not closed"),
        ("bad_tags.md", "---\ntags: 3\n---\nbody\n", "must be a list of strings"),
    ],
)
def test_a_malformed_seed_file_is_a_user_error_naming_it(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=message) as error:
        load_seeds([tmp_path], include_packaged=False)
    assert name in str(error.value)


def test_missing_folders_and_unknown_selections_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="folder not found"):
        load_seeds([tmp_path / "nope"])
    with pytest.raises(UserError, match="matches none"):
        load_seeds(select=["tag:no_such_tag"])
    (tmp_path / "d.md").write_text("---\ndisplay_name: x\n---\n- rubric\n")
    with pytest.raises(UserError, match="description"):
        load_dimensions([tmp_path])


def test_the_cluster_bootstrap_resamples_seeds_not_audits() -> None:
    # two seeds, one always 2 and one always 8: the pooled mean is 5 whatever the number of epochs
    clustered = cluster_bootstrap_mean({"a": [2.0] * 10, "b": [8.0] * 10})
    assert clustered.mean == 5.0 and clustered.clusters == 2 and clustered.n == 20
    # resampling whole seeds gives means of 2, 5 or 8, so the interval is wide; audits as if independent
    # would have given a narrow one
    assert clustered.ci_low is not None and clustered.ci_high is not None
    assert clustered.ci_low <= 2.0 + 1e-9 and clustered.ci_high >= 8.0 - 1e-9
    single = cluster_bootstrap_mean({"a": [3.0, 4.0]})
    assert single.mean == 3.5 and single.ci_low is None  # one seed: no interval, not a fake one
    assert cluster_bootstrap_mean({}).mean is None
    same = cluster_bootstrap_difference({"a": [2.0], "b": [4.0]}, {"a": [2.0], "b": [4.0]})
    assert same is not None and same.diff == 0.0 and same.ci_low <= 0.0 <= same.ci_high
    apart = cluster_bootstrap_difference({s: [9.0] for s in "abcdef"}, {s: [1.0] for s in "abcdef"})
    assert apart is not None and apart.diff == 8.0 and apart.p_value < 0.01
