"""``teachwhy eval compare``: the difference between two honeypot runs, per family and category.

Both runs' results files (:mod:`teachwhy.evals.results`) are compared on their headline cells: the pressured
cells when both runs have them, otherwise every cell. Where both runs played exactly the same episodes of a
family (the usual case: two arms or two checkpoints on one eval), the comparison is paired by episode, which
removes the variation between episodes from the difference; otherwise the two rates are compared as
independent samples (Newcombe interval, Fisher exact p-value).
"""

from __future__ import annotations

from dataclasses import dataclass

from teachwhy.evals.design import PRESSURED, PairedEpisode, condition_group, paired_difference
from teachwhy.evals.results import ALL, CategoryRate, HoneypotResults, RateRow, SampleOutcome
from teachwhy.evals.stats import rate_difference


@dataclass(frozen=True)
class FamilyComparison:
    """``rate_a - rate_b`` for one family's headline (``category`` empty) or one of its categories.

    ``group`` names the cells compared (``pressured`` when both runs have pressured cells, else ``all``).
    ``paired``: both runs played the same episodes, so the counts are those of the episodes scored in both
    (``pairs``), the interval is a paired cluster bootstrap and the p-value McNemar's exact test; otherwise
    the interval is Newcombe's and the p-value Fisher's exact test.
    """

    family: str
    harmful_a: int
    n_a: int
    harmful_b: int
    n_b: int
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    note: str = ""
    category: str = ""
    group: str = ALL
    paired: bool = False
    pairs: int = 0

    @property
    def label(self) -> str:
        return f"{self.family} · {self.category}" if self.category else self.family


def _unpaired(family: str, category: str, group: str, a: CategoryRate, b: CategoryRate) -> FamilyComparison:
    ka, na, kb, nb = a.harmful, a.n, b.harmful, b.n
    if na == 0 or nb == 0:
        note = f"run {'A' if na == 0 else 'B'} has no scored samples of this family"
        return FamilyComparison(family, ka, na, kb, nb, None, None, None, None, note, category, group)
    d = rate_difference(ka, na, kb, nb)
    return FamilyComparison(
        family, ka, na, kb, nb, d.diff, d.ci_low, d.ci_high, d.p_value, "", category, group
    )


def _paired(
    family: str, category: str, group: str, a: list[SampleOutcome], b: list[SampleOutcome]
) -> FamilyComparison:
    def outcome(s: SampleOutcome) -> str:
        return s.categories.get(category, "unscored") if category else s.outcome

    counts: dict[str, list[int]] = {}
    worlds: dict[str, str] = {}
    for offset, samples in ((0, a), (2, b)):
        for s in samples:
            c = counts.setdefault(s.sample_id, [0, 0, 0, 0])
            worlds[s.sample_id] = s.scenario_id
            c[offset] += outcome(s) == "harmful"
            c[offset + 1] += outcome(s) in ("harmful", "not_harmful")
    pairs = [PairedEpisode(worlds[e], *c) for e, c in sorted(counts.items())]
    d = paired_difference(pairs)
    if d is None:
        note = "no episode was scored in both runs"
        return FamilyComparison(family, 0, 0, 0, 0, None, None, None, None, note, category, group, True, 0)
    both = [p for p in pairs if p.n_a and p.n_b]
    return FamilyComparison(
        family,
        sum(p.harmful_a for p in both),
        sum(p.n_a for p in both),
        sum(p.harmful_b for p in both),
        sum(p.n_b for p in both),
        d.diff,
        d.ci_low,
        d.ci_high,
        d.p_value,
        f"paired on {d.pairs} episodes ({d.a_worse} worse in A, {d.b_worse} worse in B)",
        category,
        group,
        True,
        d.pairs,
    )


def compare_results(a: HoneypotResults, b: HoneypotResults) -> list[FamilyComparison]:
    """Per family present in either run: the difference in the headline rate (A - B), then each category
    both runs recorded.

    The pressured cells are compared when both runs have some, else every cell. Where both runs played
    exactly the same episodes of the family the comparison is paired by episode (McNemar exact, paired
    cluster bootstrap interval); otherwise it is unpaired (Newcombe 95% interval, Fisher exact p-value).
    """
    out: list[FamilyComparison] = []
    empty = CategoryRate(0, 0, None, None, None, 0)
    for family in sorted(set(a.families) | set(b.families)):
        group = PRESSURED if a.row(family, PRESSURED) and b.row(family, PRESSURED) else ALL
        ra, rb = a.row(family, group), b.row(family, group)

        sa, sb = _cells(a, family, group), _cells(b, family, group)
        paired = bool(sa) and {s.sample_id for s in sa} == {s.sample_id for s in sb}
        shared = [c for c in ra.categories if c in rb.categories] if ra and rb else []
        for category in ["", *shared]:
            if paired:
                out.append(_paired(family, category, group, sa, sb))
                continue
            ca = (ra.categories[category] if category else _top(ra)) if ra else empty
            cb = (rb.categories[category] if category else _top(rb)) if rb else empty
            out.append(_unpaired(family, category, group, ca, cb))
    return out


def compare_overall(a: HoneypotResults, b: HoneypotResults) -> FamilyComparison:
    """The headline over every family both runs share (family ``overall``), paired by episode when both
    played exactly the same episodes, else unpaired on the pooled counts."""
    families = sorted(set(a.families) & set(b.families))
    pressured = all(a.row(f, PRESSURED) and b.row(f, PRESSURED) for f in families)
    group = PRESSURED if families and pressured else ALL
    sa = [s for f in families for s in _cells(a, f, group)]
    sb = [s for f in families for s in _cells(b, f, group)]
    if sa and {s.sample_id for s in sa} == {s.sample_id for s in sb}:
        return _paired("overall", "", group, sa, sb)

    def pooled(samples: list[SampleOutcome]) -> CategoryRate:
        scored = [s for s in samples if s.outcome in ("harmful", "not_harmful")]
        harmful = sum(s.outcome == "harmful" for s in scored)
        return CategoryRate(len(scored), harmful, None, None, None, len(samples) - len(scored))

    return _unpaired("overall", "", group, pooled(sa), pooled(sb))


def _cells(results: HoneypotResults, family: str, group: str) -> list[SampleOutcome]:
    """The samples of one family in one group of cells (``all``, ``pressured``)."""
    return [
        s
        for s in results.samples
        if s.family == family and (group == ALL or condition_group(s.condition) == group)
    ]


def _top(row: RateRow) -> CategoryRate:
    return CategoryRate(row.n, row.harmful, row.rate, row.ci_low, row.ci_high, row.unscored)


INDICATORS = {
    "harmful_tool_calls": "harmful tool calls (per call)",
    "episodes_with_harmful_call": "episodes with a harmful call",
    "epoch_consistency": "verdict agreement across epochs",
    "paraphrase_consistency": "verdict agreement across wordings",
}
"""The indicators compared besides the rate (:mod:`teachwhy.evals.indicators`), with their labels."""


@dataclass(frozen=True)
class IndicatorComparison:
    """``a - b`` for one indicator in one scope (``all`` or a family), on each run's headline cells.

    Unpaired: Newcombe's 95% interval and Fisher's exact p-value (``diff`` is None, with a ``note``, when
    either run has no unit for it). Counts are the indicator's own units: tool calls, episodes, or the
    world-condition units played more than once.
    """

    scope: str
    indicator: str
    count_a: int
    n_a: int
    count_b: int
    n_b: int
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    note: str = ""


def compare_indicators(a: HoneypotResults, b: HoneypotResults) -> list[IndicatorComparison]:
    """Per scope both runs have (``all`` first, then each family): each indicator of :data:`INDICATORS`."""
    from teachwhy.evals.indicators import difference, honeypot_indicators

    ia, ib = honeypot_indicators(a).scopes, honeypot_indicators(b).scopes
    out: list[IndicatorComparison] = []
    for scope in [s for s in ia if s in ib]:
        for name in INDICATORS:
            pa, pb = getattr(ia[scope], name), getattr(ib[scope], name)
            counts = (pa.count if pa else 0, pa.n if pa else 0, pb.count if pb else 0, pb.n if pb else 0)
            d = difference(pa, pb) if pa is not None and pb is not None else None
            if d is None:
                # difference() is None only when a run has no unit for the indicator
                empty = [run for run, x in (("A", pa), ("B", pb)) if x is None or not x.n]
                who = "neither run has anything" if len(empty) == 2 else f"run {empty[0]} has nothing"
                note = f"{who} to measure this on"
                out.append(IndicatorComparison(scope, name, *counts, None, None, None, None, note))
                continue
            out.append(IndicatorComparison(scope, name, *counts, d.diff, d.ci_low, d.ci_high, d.p_value))
    return out
