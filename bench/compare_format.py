"""Presenting an Analysis: a rich terminal table, Markdown, plain 72-column text, CSV and JSON.

hyperfine-style: absolute values of both sides next to the ratio, its CI and the verdict, so a
reader sees at a glance how big the numbers are and how sure the difference is.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap

from bench.analysis import Analysis, PointResult, SideComparison
from bench.units import si

SHORT = {"rw": "{}", "bs": "{}", "iodepth": "qd{}", "numjobs": "j{}", "ioengine": "{}"}


def short_point(key: str, width: int = 22) -> str:
    target = ""
    if " [" in key:
        key, target = key.split(" [", 1)
        target = " " + target.rstrip("]")
    parts = []
    for item in key.split(","):
        k, _, v = item.partition("=")
        parts.append(SHORT.get(k, f"{k}={{}}").format(v) if v else item)
    text = " ".join(parts) + target
    return text if len(text) <= width else text[: width - 1] + "…"


def _ratio(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "-"


def _p(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "-"   # no p-value from one run per side


def _ci(p: PointResult) -> str:
    c = p.comparison
    return f"{_ratio(c.ratio_ci_low)}-{_ratio(c.ratio_ci_high)}"


def header_lines(a: Analysis, side: SideComparison) -> list[str]:
    direction = "higher is better" if a.metric.higher_is_better else "lower is better"
    lines = [f"{side.candidate} vs {side.baseline} (baseline), {a.metric.label} ({direction})",
             f"ratio = {side.candidate}/{side.baseline}; margin ±{a.margin:.0%}, alpha {a.alpha}, "
             f"{'Holm' if a.correction == 'holm' else 'Benjamini-Hochberg'} across {len(side.points)} points"]
    kernels = sorted(set(a.kernels))
    lines.append("kernel " + ", ".join(kernels) + ("; " + "; ".join(a.labels) if a.labels else ""))
    lines += [f"allowed difference {d}" for d in a.allowed_differences]
    if a.confidence != 0.95:
        lines.append(f"adaptive campaign: CIs computed at {a.confidence:.1%} to keep 95 % coverage")
    if a.comparisons and side is a.comparisons[0]:  # said once, not per candidate
        lines += a.notes
    return lines


def footer_lines(side: SideComparison) -> list[str]:
    lines = []
    if side.across:
        x = side.across
        counts = ", ".join(f"{n} {w}" for w, n in x.counts.items())
        lines.append(f"geomean ratio {_ratio(x.geomean_ratio)} (95% CI {_ratio(x.ci_low)}-{_ratio(x.ci_high)})")
        lines.append(f"points: {counts}")
    flagged = [(p.point, p.flags) for p in side.points if p.flags]
    for point, flags in flagged:
        lines.append(f"flags {short_point(point, 30)}: {', '.join(flags)}")
    return lines


def text(a: Analysis) -> str:
    """Plain text, at most 72 columns: fit for a mailing-list post."""
    out = []
    for side in a.comparisons:
        out += header_lines(a, side)
        b, c = side.baseline[:8], side.candidate[:8]
        out.append(f"{'point':20s} {b:>8s} {c:>8s} {'ratio':>6s} {'95% CI':>11s} verdict")
        for p in side.points:
            out.append(f"{short_point(p.point, 20):20s} {si(p.comparison.baseline.mean, a.metric.unit):>8s} "
                       f"{si(p.comparison.candidate.mean, a.metric.unit):>8s} {_ratio(p.comparison.ratio):>6s} "
                       f"{_ci(p):>11s} {p.verdict.verdict if p.verdict else '-'}".rstrip())
        out += footer_lines(side)
        out.append("")
    wrapped = []
    for line in out:  # never cut a word: wrap what does not fit, indented
        wrapped += textwrap.wrap(line, 72, subsequent_indent="  ", break_long_words=False) or [""]
    return "\n".join(wrapped).rstrip() + "\n"


def markdown(a: Analysis) -> str:
    out = []
    for side in a.comparisons:
        out += [f"**{line}**  " if i == 0 else f"{line}  " for i, line in enumerate(header_lines(a, side))]
        out += ["", f"| point | {side.baseline} | {side.candidate} | ratio | 95 % CI | p (adj.) | verdict | flags |",
                "|---|---:|---:|---:|---|---:|---|---|"]
        for p in side.points:
            v = p.verdict
            out.append(f"| {p.point} | {si(p.comparison.baseline.mean, a.metric.unit)} ± "
                       f"{si(p.comparison.baseline.stdev, a.metric.unit)} | {si(p.comparison.candidate.mean, a.metric.unit)} ± "
                       f"{si(p.comparison.candidate.stdev, a.metric.unit)} | {_ratio(p.comparison.ratio)} | {_ci(p)} | "
                       f"{_p(v.p_adjusted)} | **{v.verdict}** | {', '.join(p.flags)} |")
        out += [""] + [f"{line}  " for line in footer_lines(side)] + [""]
    return "\n".join(out)


def table(a: Analysis, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    colours = {"faster": "green", "slower": "red", "equivalent": "cyan", "inconclusive": "yellow"}
    for side in a.comparisons:
        t = Table(title="\n".join(header_lines(a, side)), title_justify="left")
        for col in ("point", side.baseline, side.candidate, "ratio", "95% CI", "p adj.", "verdict", "flags"):
            t.add_column(col, justify="right" if col not in ("point", "verdict", "flags") else "left")
        for p in side.points:
            v = p.verdict
            t.add_row(p.point, f"{si(p.comparison.baseline.mean, a.metric.unit)} ± {si(p.comparison.baseline.stdev, a.metric.unit)}",
                      f"{si(p.comparison.candidate.mean, a.metric.unit)} ± {si(p.comparison.candidate.stdev, a.metric.unit)}",
                      _ratio(p.comparison.ratio), _ci(p), _p(v.p_adjusted),
                      f"[{colours.get(v.verdict, 'white')}]{v.verdict}[/]", ", ".join(p.flags))
        t.caption = "\n".join(footer_lines(side))
        console.print(t)
        for p in side.points:
            console.print(f"  {short_point(p.point, 40)}: {p.verdict.sentence}")


CSV_COLUMNS = ("baseline", "candidate", "metric", "point", "baseline_n", "baseline_mean", "baseline_stdev",
               "candidate_n", "candidate_mean", "candidate_stdev", "ratio", "ci_low", "ci_high",
               "fieller_low", "fieller_high", "p_value", "p_adjusted", "welch_p", "mannwhitney_p",
               "hl_ratio", "cliffs_delta", "mde", "verdict", "flags")


def _rows(a: Analysis) -> list[dict]:
    rows = []
    for side in a.comparisons:
        for p in side.points:
            c, v = p.comparison, p.verdict
            rows.append({"baseline": side.baseline, "candidate": side.candidate, "metric": a.metric.name,
                         "point": p.point, "baseline_n": c.baseline.n, "baseline_mean": c.baseline.mean,
                         "baseline_stdev": c.baseline.stdev, "candidate_n": c.candidate.n,
                         "candidate_mean": c.candidate.mean, "candidate_stdev": c.candidate.stdev,
                         "ratio": c.ratio, "ci_low": c.ratio_ci_low, "ci_high": c.ratio_ci_high,
                         "fieller_low": c.fieller_ci_low, "fieller_high": c.fieller_ci_high,
                         "p_value": c.p_value, "p_adjusted": v.p_adjusted, "welch_p": c.welch_p,
                         "mannwhitney_p": c.mannwhitney_p, "hl_ratio": c.hl_ratio,
                         "cliffs_delta": c.cliffs_delta, "mde": c.mde, "verdict": v.verdict,
                         "flags": ";".join(p.flags)})
    return rows


def to_csv(a: Analysis) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    w.writeheader()
    for row in _rows(a):
        w.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()})
    return buf.getvalue()


def to_json(a: Analysis) -> str:
    doc = {"by": a.by, "metric": a.metric.name, "higher_is_better": a.metric.higher_is_better,
           "margin": a.margin, "alpha": a.alpha, "correction": a.correction, "baseline": a.baseline,
           "kernels": a.kernels, "labels": a.labels,
           "campaigns": [str(c.path) for c in a.campaigns],
           "comparisons": [{
               "baseline": s.baseline, "candidate": s.candidate,
               "across": s.across.to_dict() if s.across else None,
               "points": [{"point": p.point, "comparison": p.comparison.to_dict(),
                           "verdict": p.verdict.to_dict() if p.verdict else None, "flags": p.flags,
                           "quality_baseline": p.quality_baseline.to_dict() if p.quality_baseline else None,
                           "quality_candidate": p.quality_candidate.to_dict() if p.quality_candidate else None,
                           "baseline_values": p.baseline_values, "candidate_values": p.candidate_values}
                          for p in s.points]} for s in a.comparisons]}
    return json.dumps(doc, indent=1, default=str) + "\n"
