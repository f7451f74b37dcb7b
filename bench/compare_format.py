"""The verdict table: one view-model, rendered in every format.

`tables(analysis)` makes one `VerdictTable` per candidate: its header lines, one `Row` per point
in reading order (the point's label, the formatted cells, the comparison behind them) and its
footer lines. Every format shows those rows under the same column names and the same point
labels: `text` (72 columns, for a mailing list), `markdown`, `table` (rich, fitted to the
terminal: at 80 columns it drops the p-values, the standard deviations and the long verdict
wording rather than cut a cell), `to_csv`, `to_json`, and report.py's HTML.

hyperfine-style: absolute values of both sides next to the ratio, its CI and the verdict, so a
reader sees at a glance how big the numbers are and how sure the difference is.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from dataclasses import dataclass

from bench.analysis import Analysis, PointResult, SideComparison
from bench.kernel_gap import GapAnalysis, GapPoint, GapSide
from bench.stats.defaults import CORRECTIONS
from bench.units import margin_text, ratio_ci_text, ratio_text, si

TEXT_WIDTH = 72
# Column ids in display order; the value columns are headed by the targets' own names.
POINT, BASELINE, CANDIDATE, RATIO, CI, P, P_EQUIV, VERDICT, FLAGS = (
    "point",
    "baseline",
    "candidate",
    "ratio",
    "ci",
    "p",
    "p_equiv",
    "verdict",
    "flags",
)
ALL_COLUMNS = (POINT, BASELINE, CANDIDATE, RATIO, CI, P, P_EQUIV, VERDICT, FLAGS)
HEADERS = {
    POINT: "point",
    RATIO: "ratio",
    CI: "95 % CI",
    P: "p (adj.)",
    P_EQUIV: "p equiv (adj.)",
    VERDICT: "verdict",
    FLAGS: "flags",
}
NUMERIC = frozenset({BASELINE, CANDIDATE, RATIO, CI, P, P_EQUIV})
BEYOND_MARK = "*"


def _p(value: float | None) -> str:
    return f"{value:.3g}" if value is not None and math.isfinite(value) else "-"  # none from one run per side


@dataclass(frozen=True)
class Row:
    """One point of a verdict table: what every format shows, and the numbers behind it."""

    key: str  # the point's identity: rw=randread,bs=4k,iodepth=1
    label: str  # as people read it: randread 4k qd1
    baseline_mean: str
    baseline_sd: str
    candidate_mean: str
    candidate_sd: str
    ratio: str
    ci: str
    p_adjusted: str
    p_equiv_adjusted: str
    verdict: str  # faster, slower, equivalent, inconclusive; "-" when undecided
    beyond_margin: bool
    flags: tuple[str, ...]
    sentence: str
    result: PointResult | GapPoint

    def verdict_text(self, short: bool = False) -> str:
        """'faster, beyond margin', or 'faster*' where space is short (the mark is explained below)."""
        if not self.beyond_margin:
            return self.verdict
        return self.verdict + (BEYOND_MARK if short else ", beyond margin")

    def cell(self, column: str, *, with_sd: bool = True, short_verdict: bool = False) -> str:
        if column == POINT:
            return self.label
        if column in (BASELINE, CANDIDATE):
            mean, sd = (
                (self.baseline_mean, self.baseline_sd)
                if column == BASELINE
                else (self.candidate_mean, self.candidate_sd)
            )
            return f"{mean} \u00b1 {sd}" if with_sd and sd else mean  # a gap row has no sd
        if column == VERDICT:
            return self.verdict_text(short_verdict)
        return {
            RATIO: self.ratio,
            CI: self.ci,
            P: self.p_adjusted,
            P_EQUIV: self.p_equiv_adjusted,
            FLAGS: ", ".join(self.flags),
        }[column]


@dataclass(frozen=True)
class VerdictTable:
    baseline: str
    candidate: str
    header: list[str]  # the title first, then what the reader needs to read the rows
    rows: list[Row]
    footer: list[str]  # across the points: geometric mean, verdict counts
    margin: float

    def heading(self, column: str) -> str:
        return {BASELINE: self.baseline, CANDIDATE: self.candidate}.get(column) or HEADERS[column]

    @property
    def any_flags(self) -> bool:
        return any(r.flags for r in self.rows)

    @property
    def any_beyond(self) -> bool:
        return any(r.beyond_margin for r in self.rows)

    def flag_lines(self) -> list[str]:
        """The flags, for formats without a flags column."""
        return [f"flags {r.label}: {', '.join(r.flags)}" for r in self.rows if r.flags]

    def beyond_note(self) -> str:
        return f"{BEYOND_MARK} beyond the margin: the whole CI lies outside {margin_text(self.margin)}"


def header_lines(a: Analysis, side: SideComparison) -> list[str]:
    direction = "higher is better" if a.metric.higher_is_better else "lower is better"
    lines = [
        f"{side.candidate} vs {side.baseline} (baseline), {a.metric.label} ({direction})",
        (
            f"ratio = {side.candidate}/{side.baseline}; margin {margin_text(a.margin)}, alpha {a.alpha:g}, "
            f"{CORRECTIONS[a.correction]} across {len(side.points)} points"
        ),
    ]
    kernels = sorted(set(a.kernels))
    lines.append("kernel " + ", ".join(kernels) + ("; " + "; ".join(a.labels) if a.labels else ""))
    lines += [f"allowed difference {d}" for d in a.allowed_differences]
    if a.confidence != 0.95:
        lines.append(
            f"adaptive campaign: CIs at {a.confidence:.1%} and tests at alpha {1 - a.confidence:.3g} "
            "to keep 95 % claims"
        )
    if a.comparisons and side is a.comparisons[0]:  # said once, not per candidate
        lines += a.notes
    return lines


def footer_lines(side: SideComparison) -> list[str]:
    if not side.across:
        return []
    x = side.across
    counts = ", ".join(f"{n} {w}" for w, n in x.counts.items())
    if x.ci_problem:
        lines = [f"geomean ratio {ratio_text(x.geomean_ratio)} (no CI: {x.ci_problem})"]
    else:
        lines = [
            (
                f"geomean ratio {ratio_text(x.geomean_ratio)} (95 % CI "
                f"{ratio_ci_text(x.ci_low, x.ci_high, x.geomean_ratio)}, bootstrap over {x.rounds} rounds)"
            )
        ]
    beyond = sum(1 for p in side.points if p.verdict and p.verdict.beyond_margin)
    return lines + [f"points: {counts} ({beyond} beyond the margin)"]


def row(p: PointResult, unit: str) -> Row:
    c, v = p.comparison, p.verdict
    return Row(
        key=p.point,
        label=p.label or p.point,
        baseline_mean=si(c.baseline.mean, unit),
        baseline_sd=si(c.baseline.stdev, unit),
        candidate_mean=si(c.candidate.mean, unit),
        candidate_sd=si(c.candidate.stdev, unit),
        ratio=ratio_text(c.ratio),
        ci=ratio_ci_text(c.ratio_ci_low, c.ratio_ci_high, c.ratio),
        p_adjusted=_p(v.p_adjusted if v else None),
        p_equiv_adjusted=_p(v.p_equiv_adjusted if v else None),
        verdict=v.verdict if v else "-",
        beyond_margin=bool(v and v.beyond_margin),
        flags=tuple(p.flags),
        sentence=v.sentence if v else "",
        result=p,
    )


def tables(a: Analysis | GapAnalysis) -> list[VerdictTable]:
    """The view-model of every format: one table per candidate, points in reading order.

    `compare --by gap`: each kernel's own tables (absolute numbers and the gap on that kernel,
    kernels in version order), then one table per candidate and later kernel whose columns are
    the gap on the reference kernel and on the later one, and whose ratio is their ratio."""
    if isinstance(a, GapAnalysis):
        return [t for _, k in a.per_kernel for t in tables(k)] + gap_tables(a)
    return [
        VerdictTable(
            side.baseline,
            side.candidate,
            header_lines(a, side),
            [row(p, a.metric.unit) for p in side.points],
            footer_lines(side),
            a.margin,
        )
        for side in a.comparisons
    ]


def gap_tables(a: GapAnalysis) -> list[VerdictTable]:
    """The gap tables alone (the report shows each kernel's own tables elsewhere)."""
    return [_gap_table(a, side) for side in a.gaps]


def gap_header_lines(a: GapAnalysis, side: GapSide) -> list[str]:
    direction = "higher is better" if a.metric.higher_is_better else "lower is better"
    gap = f"{side.candidate}/{side.baseline}"
    lines = [
        f"{gap} gap, kernel {side.kernel} vs {side.reference_kernel} (reference), {a.metric.label} ({direction})",
        f"gap = {gap} per kernel; ratio = gap {side.kernel} / gap {side.reference_kernel}",
        f"margin {margin_text(a.margin)}, alpha {a.alpha:g}, {CORRECTIONS[a.correction]} across {len(side.points)} points",
        "kernels unpaired (other boots); sessions within a kernel: a design level",
    ]
    if a.labels:
        lines.append("; ".join(a.labels))
    if a.confidence != 0.95:
        lines.append(
            f"adaptive campaign: CIs at {a.confidence:.1%} and tests at alpha {1 - a.confidence:.3g} "
            "to keep 95 % claims"
        )
    if a.gaps and side is a.gaps[0]:
        lines += a.notes
    return lines


def gap_row(p: GapPoint) -> Row:
    g, v = p.gap, p.verdict
    return Row(
        key=p.point,
        label=p.label or p.point,
        baseline_mean=ratio_text(g.reference_ratio),
        baseline_sd="",
        candidate_mean=ratio_text(g.later_ratio),
        candidate_sd="",
        ratio=ratio_text(g.ratio),
        ci=ratio_ci_text(g.ratio_ci_low, g.ratio_ci_high, g.ratio),
        p_adjusted=_p(v.p_adjusted if v else None),
        p_equiv_adjusted=_p(v.p_equiv_adjusted if v else None),
        verdict=v.verdict if v else "-",
        beyond_margin=bool(v and v.beyond_margin),
        flags=(),
        sentence=v.sentence if v else "",
        result=p,
    )


def _gap_table(a: GapAnalysis, side: GapSide) -> VerdictTable:
    counts = ", ".join(f"{n} {w}" for w, n in side.counts.items())
    beyond = sum(1 for p in side.points if p.verdict and p.verdict.beyond_margin)
    return VerdictTable(
        f"gap {side.reference_kernel}",
        f"gap {side.kernel}",
        gap_header_lines(a, side),
        [gap_row(p) for p in side.points],
        [f"points: {counts} ({beyond} beyond the margin)"],
        a.margin,
    )


# ------------------------------------------------------------------------------------------
# Plain text, Markdown


def _fixed_width(t: VerdictTable, columns: tuple[str, ...]) -> list[str]:
    """Columns as wide as their widest cell: the label left, numbers right, the verdict last."""
    cells = [[r.cell(col, with_sd=False, short_verdict=True) for col in columns] for r in t.rows]
    heads = [t.heading(col) for col in columns]
    widths = [max(len(x) for x in column) for column in zip(heads, *cells)]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if col in NUMERIC else v.ljust(w) for col, v, w in zip(columns, values, widths)]
        return " ".join(parts).rstrip()

    return [line(heads)] + [line(c) for c in cells]


def text(a: Analysis | GapAnalysis) -> str:
    """Plain text, at most 72 columns: fit for a mailing-list post."""
    return text_of(tables(a))


def text_of(verdict_tables: list[VerdictTable]) -> str:
    out = []
    for t in verdict_tables:
        out += t.header
        out += _fixed_width(t, (POINT, BASELINE, CANDIDATE, RATIO, CI, VERDICT))
        if t.any_beyond:
            out.append(t.beyond_note())
        out += t.footer + t.flag_lines() + [""]
    wrapped = []
    for line in out:  # never cut a word: wrap what does not fit, indented
        wrapped += textwrap.wrap(line, TEXT_WIDTH, subsequent_indent="  ", break_long_words=False) or [""]
    return "\n".join(wrapped).rstrip() + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(a: Analysis | GapAnalysis) -> str:
    return markdown_of(tables(a))


def markdown_of(verdict_tables: list[VerdictTable]) -> str:
    out = []
    for t in verdict_tables:
        out += [f"**{_md(line)}**  " if i == 0 else f"{_md(line)}  " for i, line in enumerate(t.header)]
        out += [
            "",
            "| " + " | ".join(_md(t.heading(col)) for col in ALL_COLUMNS) + " |",
            "|" + "|".join("---:" if col in NUMERIC else "---" for col in ALL_COLUMNS) + "|",
        ]
        for r in t.rows:
            cells = [_md(r.cell(col)) for col in ALL_COLUMNS]
            cells[ALL_COLUMNS.index(VERDICT)] = (
                f"**{r.verdict}**" + (", beyond margin" if r.beyond_margin else "")
                if r.verdict != "-"
                else "-"
            )
            out.append("| " + " | ".join(cells) + " |")
        out += [""] + [f"{_md(line)}  " for line in t.footer] + [""]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------
# The terminal


@dataclass(frozen=True)
class Layout:
    columns: tuple[str, ...]
    with_sd: bool
    short_verdict: bool


def layouts(t: VerdictTable) -> list[Layout]:
    """From the fullest to the narrowest: the first that fits the terminal is shown."""
    flags = (FLAGS,) if t.any_flags else ()
    full = (POINT, BASELINE, CANDIDATE, RATIO, CI, P, P_EQUIV, VERDICT) + flags
    core = (POINT, BASELINE, CANDIDATE, RATIO, CI, VERDICT)
    return [
        Layout(full, True, False),
        Layout(core, True, False),
        Layout(core, True, True),
        Layout(core, False, True),
        Layout((POINT, BASELINE, CANDIDATE, CI, VERDICT), False, True),
    ]


def _rich_table(t: VerdictTable, layout: Layout):
    from rich import box
    from rich.table import Table

    colours = {"faster": "green", "slower": "red", "equivalent": "cyan", "inconclusive": "yellow"}
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for col in layout.columns:
        table.add_column(
            t.heading(col),
            justify="right" if col in NUMERIC else "left",
            overflow="fold",
            no_wrap=col in NUMERIC,
        )
    for r in t.rows:
        cells = [
            r.cell(col, with_sd=layout.with_sd, short_verdict=layout.short_verdict) for col in layout.columns
        ]
        if VERDICT in layout.columns:
            i = layout.columns.index(VERDICT)
            cells[i] = f"[{colours.get(r.verdict, 'white')}]{cells[i]}[/]"
        table.add_row(*cells)
    return table


def fitted(t: VerdictTable, width: int) -> Layout:
    """The fullest layout whose table fits `width` columns (the narrowest when none does)."""
    from rich.console import Console

    measure = Console(width=10_000, file=io.StringIO())
    for layout in layouts(t):
        if measure.measure(_rich_table(t, layout)).maximum <= width:
            return layout
    return layouts(t)[-1]


def table(a: Analysis | GapAnalysis, console=None) -> None:
    """The verdict tables for the terminal, as wide as it is, then each verdict in words."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    for i, t in enumerate(tables(a)):
        if i:
            console.print()
        layout = fitted(t, console.width)
        for line in t.header:
            console.print(escape(line), highlight=False)
        console.print(_rich_table(t, layout))
        below = list(t.footer)
        if layout.short_verdict and t.any_beyond:
            below.append(t.beyond_note())
        if FLAGS not in layout.columns:
            below += t.flag_lines()
        if P not in layout.columns:
            below.append("p-values and flags in full: --format markdown, csv or json (or a wider terminal)")
        for line in below:
            console.print(escape(line), highlight=False)
        for r in t.rows:  # each verdict in words, wrapped with a hanging indent
            if r.sentence:
                for line in textwrap.wrap(
                    f"{r.label}: {r.sentence}",
                    max(console.width, 40),
                    initial_indent="  ",
                    subsequent_indent="    ",
                    break_long_words=False,
                ):
                    console.print(escape(line), highlight=False)


# ------------------------------------------------------------------------------------------
# CSV and JSON


CSV_COLUMNS = (
    "baseline",
    "candidate",
    "metric",
    "point",
    "label",
    "baseline_n",
    "baseline_mean",
    "baseline_stdev",
    "candidate_n",
    "candidate_mean",
    "candidate_stdev",
    "ratio",
    "ci_low",
    "ci_high",
    "fieller_low",
    "fieller_high",
    "p_value",
    "p_adjusted",
    "p_equiv",
    "p_equiv_adjusted",
    "welch_p",
    "mannwhitney_p",
    "hl_ratio",
    "cliffs_delta",
    "mde",
    "verdict",
    "beyond_margin",
    "flags",
)


def _rows(a: Analysis) -> list[dict]:
    rows = []
    for t in tables(a):
        for r in t.rows:
            c, v = r.result.comparison, r.result.verdict
            rows.append(
                {
                    "baseline": t.baseline,
                    "candidate": t.candidate,
                    "metric": a.metric.name,
                    "point": r.key,
                    "label": r.label,
                    "baseline_n": c.baseline.n,
                    "baseline_mean": c.baseline.mean,
                    "baseline_stdev": c.baseline.stdev,
                    "candidate_n": c.candidate.n,
                    "candidate_mean": c.candidate.mean,
                    "candidate_stdev": c.candidate.stdev,
                    "ratio": c.ratio,
                    "ci_low": c.ratio_ci_low,
                    "ci_high": c.ratio_ci_high,
                    "fieller_low": c.fieller_ci_low,
                    "fieller_high": c.fieller_ci_high,
                    "p_value": c.p_value,
                    "p_adjusted": v.p_adjusted if v else math.nan,
                    "p_equiv": v.p_equiv if v else math.nan,
                    "p_equiv_adjusted": v.p_equiv_adjusted if v else math.nan,
                    "welch_p": c.welch_p,
                    "mannwhitney_p": c.mannwhitney_p,
                    "hl_ratio": c.hl_ratio,
                    "cliffs_delta": c.cliffs_delta,
                    "mde": c.mde,
                    "verdict": r.verdict,
                    "beyond_margin": int(r.beyond_margin),
                    "flags": ";".join(r.flags),
                }
            )
    return rows


GAP_CSV_COLUMNS = (
    "baseline",
    "candidate",
    "reference_kernel",
    "kernel",
    "metric",
    "point",
    "label",
    "reference_baseline_mean",
    "reference_candidate_mean",
    "reference_ratio",
    "reference_ci_low",
    "reference_ci_high",
    "later_baseline_mean",
    "later_candidate_mean",
    "later_ratio",
    "later_ci_low",
    "later_ci_high",
    "ratio",
    "ci_low",
    "ci_high",
    "bootstrap_low",
    "bootstrap_high",
    "fieller_low",
    "fieller_high",
    "session_low",
    "session_high",
    "p_value",
    "p_adjusted",
    "p_equiv",
    "p_equiv_adjusted",
    "verdict",
    "beyond_margin",
)


def _gap_rows(a: GapAnalysis) -> list[dict]:
    rows = []
    for side in a.gaps:
        for r in (gap_row(p) for p in side.points):
            p = r.result
            g, v, ref, later = p.gap, p.verdict, p.reference.comparison, p.later.comparison
            rows.append(
                {
                    "baseline": side.baseline,
                    "candidate": side.candidate,
                    "reference_kernel": side.reference_kernel,
                    "kernel": side.kernel,
                    "metric": a.metric.name,
                    "point": r.key,
                    "label": r.label,
                    "reference_baseline_mean": ref.baseline.mean,
                    "reference_candidate_mean": ref.candidate.mean,
                    "reference_ratio": ref.ratio,
                    "reference_ci_low": ref.ratio_ci_low,
                    "reference_ci_high": ref.ratio_ci_high,
                    "later_baseline_mean": later.baseline.mean,
                    "later_candidate_mean": later.candidate.mean,
                    "later_ratio": later.ratio,
                    "later_ci_low": later.ratio_ci_low,
                    "later_ci_high": later.ratio_ci_high,
                    "ratio": g.ratio,
                    "ci_low": g.ratio_ci_low,
                    "ci_high": g.ratio_ci_high,
                    "bootstrap_low": g.bootstrap_ci_low,
                    "bootstrap_high": g.bootstrap_ci_high,
                    "fieller_low": g.fieller_ci_low,
                    "fieller_high": g.fieller_ci_high,
                    "session_low": g.session_ci_low,
                    "session_high": g.session_ci_high,
                    "p_value": g.p_value,
                    "p_adjusted": v.p_adjusted if v else math.nan,
                    "p_equiv": g.p_equiv,
                    "p_equiv_adjusted": v.p_equiv_adjusted if v else math.nan,
                    "verdict": r.verdict,
                    "beyond_margin": int(r.beyond_margin),
                }
            )
    return rows


def to_csv(a: Analysis | GapAnalysis) -> str:
    """One row per point (csv holds one table; with --by gap, the gaps' rows, which carry each
    kernel's means and gap beside the ratio of the gaps)."""
    buf = io.StringIO()
    gap = isinstance(a, GapAnalysis)
    w = csv.DictWriter(buf, fieldnames=list(GAP_CSV_COLUMNS if gap else CSV_COLUMNS), lineterminator="\n")
    w.writeheader()
    for row_ in _gap_rows(a) if gap else _rows(a):
        w.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row_.items()})
    return buf.getvalue()


def _gap_json(a: GapAnalysis) -> dict:
    return {
        "by": "gap",
        "metric": a.metric.name,
        "higher_is_better": a.metric.higher_is_better,
        "margin": a.margin,
        "alpha": a.alpha,
        "correction": a.correction,
        "confidence": a.confidence,
        "kernels": a.kernels,
        "reference_kernel": a.reference_kernel,
        "labels": a.labels,
        "notes": a.notes,
        "campaigns": [str(c.path) for c in a.campaigns],
        "per_kernel": [{"kernel": k} | _json_doc(analysis) for k, analysis in a.per_kernel],
        "gaps": [
            {
                "baseline": side.baseline,
                "candidate": side.candidate,
                "reference_kernel": side.reference_kernel,
                "kernel": side.kernel,
                "counts": side.counts,
                "points": [
                    {
                        "point": p.point,
                        "label": p.label,
                        "gap": p.gap.to_dict(),
                        "verdict": p.verdict.to_dict() if p.verdict else None,
                        "reference": p.reference.comparison.to_dict(),
                        "later": p.later.comparison.to_dict(),
                    }
                    for p in side.points
                ],
            }
            for side in a.gaps
        ],
    }


def to_json(a: Analysis | GapAnalysis) -> str:
    doc = _gap_json(a) if isinstance(a, GapAnalysis) else _json_doc(a)
    return json.dumps(doc, indent=1, default=str) + "\n"


def _json_doc(a: Analysis) -> dict:
    doc = {
        "by": a.by,
        "metric": a.metric.name,
        "higher_is_better": a.metric.higher_is_better,
        "margin": a.margin,
        "alpha": a.alpha,
        "correction": a.correction,
        "baseline": a.baseline,
        "kernels": a.kernels,
        "labels": a.labels,
        "campaigns": [str(c.path) for c in a.campaigns],
        "comparisons": [
            {
                "baseline": t.baseline,
                "candidate": t.candidate,
                "across": s.across.to_dict() if s.across else None,
                "points": [
                    {
                        "point": r.key,
                        "label": r.label,
                        "comparison": r.result.comparison.to_dict(),
                        "verdict": r.result.verdict.to_dict() if r.result.verdict else None,
                        "flags": list(r.flags),
                        "quality_baseline": r.result.quality_baseline.to_dict()
                        if r.result.quality_baseline
                        else None,
                        "quality_candidate": r.result.quality_candidate.to_dict()
                        if r.result.quality_candidate
                        else None,
                        "baseline_values": r.result.baseline_values,
                        "candidate_values": r.result.candidate_values,
                    }
                    for r in t.rows
                ],
            }
            for t, s in zip(tables(a), a.comparisons)
        ],
    }
    return doc
