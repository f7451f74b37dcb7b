"""`blkcmp report`: everything a reader needs to judge a comparison, in three forms.

* report.html: one self-contained page (figures as inline SVG, styles inline, no script, no
  font or file fetched from anywhere) with the verdicts, data-quality flags, the fairness audit,
  the environment, the plan and the exact fio job of every point;
* report.md with the figures as SVG files in figures/ beside it, for a repository or a wiki;
* report.txt, at most 72 columns, for a mailing-list post (the verdict table is
  `blkcmp compare --format text`).
An emulated executor's label is shown first and loudly in all three: such numbers prove the
machinery, not the drivers.
"""

from __future__ import annotations

import html
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from bench import compare_format, kernel_gap, store
from bench.analysis import Analysis
from bench.analysis_options import DEFAULTS, AnalysisOptions
from bench.errors import UsageError
from bench.plots import catalogue as catalogue_mod
from bench.plots import data as plot_data
from bench.plots.result import Plotted

TEXT_WIDTH = 72


@dataclass
class CampaignReport:
    """What the report says about one campaign directory besides its numbers."""

    path: Path
    name: str
    environment: dict
    plan: dict
    status: dict[str, int]
    audit_sessions: list[store.TargetSession]
    allow_differences: list[str]
    jobs: list[tuple[str, str, str]]  # (point key, target, fio job text), in matrix order
    kernel_environments: dict[str, dict] = field(default_factory=dict)  # label -> record (several kernels)


@dataclass
class Report:
    title: str
    catalogue: catalogue_mod.Catalogue
    campaigns: list[CampaignReport]
    gap: kernel_gap.GapAnalysis | None = None  # campaigns on two or more kernels: did the gap change?
    gap_problem: str = ""  # why there is no gap analysis though there are kernels
    _svgs: dict = field(default_factory=dict, repr=False)

    def svg(self, fig: Plotted) -> str:
        """The figure as SVG, rendered once for both the HTML page and the Markdown's files."""
        if fig.svg is not None:  # drawn by a worker process (catalogue.build(as_svg=True))
            return fig.svg
        if fig.name not in self._svgs:
            self._svgs[fig.name] = catalogue_mod.svg_text(fig)
        return self._svgs[fig.name]

    @property
    def emulated_labels(self) -> list[str]:
        return sorted(
            {
                c.environment.get("executor", {}).get("label", "")
                for c in self.campaigns
                if c.environment.get("executor", {}).get("emulated")
            }
        )


# ------------------------------------------------------------------------------------------
# Gathering


def _jobs(campaign: store.Campaign, plan) -> list[tuple[str, str, str]]:
    """The job file of each point and target, from its first finished run."""
    done = {r["run_id"] for r in store.run_rows(campaign) if r["status"] == "done"}
    seen, jobs = set(), []
    for point in plan.points:
        for target in plan.targets:
            run = next(
                (
                    r
                    for r in plan.runs
                    if r.point_index == point.index and r.target == target and r.run_id in done
                ),
                None,
            )
            text = campaign.job_text(run.run_id) if run else None
            if text is not None and (point.key, target) not in seen:
                seen.add((point.key, target))
                jobs.append((point.key, target, text))
    return jobs


def campaign_report(path: Path) -> CampaignReport:
    campaign = store.open_campaign(path)
    plan = campaign.plan()
    allow = list(campaign.workload().allow_differences) if campaign.has_workload() else []
    plan_doc = {k: v for k, v in plan.to_dict().items() if k != "runs"} | {"planned_runs": len(plan.runs)}
    return CampaignReport(
        path=campaign.path,
        name=campaign.name,
        environment=campaign.environment(),
        plan=plan_doc,
        status=store.status_counts(campaign),
        audit_sessions=campaign.sessions(),
        allow_differences=allow,
        jobs=_jobs(campaign, plan),
        kernel_environments=campaign.kernel_environments(),
    )


def collect(dirs: list[Path], options: AnalysisOptions = DEFAULTS) -> Report:
    # figures made and drawn in parallel: the report needs their SVG, titles and captions only
    cat = catalogue_mod.build(dirs, options, as_svg=True)
    campaigns = [campaign_report(Path(d)) for d in dirs]
    names = list(dict.fromkeys(c.name for c in campaigns))
    title = "blkcmp report: " + ", ".join(names)
    analysed = [(g.kernel, g.analysis) for g in cat.groups if g.analysis is not None]
    gap, problem = None, ""
    if len(analysed) > 1:
        try:  # a fact about the data (a target missing on one kernel), said in place of the gaps
            gap = kernel_gap.gaps_between(analysed, options)
        except UsageError as exc:
            problem = str(exc)
    return Report(title, cat, campaigns, gap, problem)


def gap_lines(report: Report) -> list[str]:
    """What the report says about the gap between kernels when there is no gap table."""
    return [f"no gap between kernels: {report.gap_problem}"] if report.gap_problem else []


# ------------------------------------------------------------------------------------------
# Facts shared by the three forms


def audit_table(campaign: CampaignReport) -> tuple[list[str], list[tuple[str, list[str], str]]]:
    """(targets, rows of (setting, value per target, state)) from the last set-up session.

    state is "same", "differs" (refused unless allowed) or "allowed" (listed in allow_differences).
    """
    if not campaign.audit_sessions:
        return [], []
    described = campaign.audit_sessions[-1].targets
    targets = list(described)
    rows = []
    for key in ("driver", "device", "interface"):
        values = [str(described[t].get(key, "")) for t in targets]
        if any(values):
            rows.append((key, values, "info"))
    # An existing device (driver blockdev): what it is, and any write refusal the workload overrode.
    from bench.targets.blockdev import identity_summary
    from bench.targets.configfs import ATTRIBUTE_AUDIT_PREFIX

    identities = [identity_summary(described[t].get("identity") or {}) for t in targets]
    if any(identities):
        rows.append(("identity", identities, "info"))
    overridden = [", ".join(described[t].get("overridden") or []) for t in targets]
    if any(overridden):
        rows.append(("write refusals overridden", overridden, "info"))
    keys = list(dict.fromkeys(k for t in targets for k in (described[t].get("audit") or {})))
    for key in keys:
        values = [str((described[t].get("audit") or {}).get(key, "-")) for t in targets]
        audited = [v for t, v in zip(targets, values) if "audit" in described[t]]
        # A driver attribute only some targets have (null_blk's queue_mode, the out-of-tree
        # rnull's completion_nsec against mainline rnull) is shown, not compared.
        only_some = key.startswith(ATTRIBUTE_AUDIT_PREFIX) and "-" in audited
        state = (
            "info"
            if only_some
            else "same"
            if len(set(audited)) <= 1
            else ("allowed" if key in campaign.allow_differences else "differs")
        )
        rows.append((key, values, state))
    return targets, rows


def environment_rows(campaign: CampaignReport) -> list[tuple[str, str]]:
    env = campaign.environment
    kernel, cpu = env.get("kernel") or {}, env.get("cpu") or {}
    blkcmp = env.get("blkcmp") or {}
    executor = env.get("executor") or {}
    rows = [
        ("executor", executor.get("label") or env.get("source") or "unknown"),
        ("kernel", kernel.get("release") or "unknown"),
        ("kernel build", kernel.get("version") or ""),
        ("CPU", f"{cpu.get('model', 'unknown')} \u00d7 {cpu.get('count', '?')}"),
        ("governors", ", ".join(sorted(set((cpu.get("governors") or {}).values()))) or ""),
        ("boost, SMT", f"boost {cpu.get('boost') or '-'}, SMT {cpu.get('smt') or '-'}" if cpu else ""),
        ("clocksource", env.get("clocksource") or ""),
        ("virtualization", env.get("virtualization") or ""),
        ("fio", env.get("fio_version") or ""),
        ("python", env.get("python") or ""),
        ("blkcmp", f"{blkcmp.get('version', '?')} (commit {blkcmp.get('git_commit') or 'unknown'})"),
        ("host", env.get("hostname") or ""),
    ]
    rows.insert(1, ("VM boots", vm_boots_text(env.get("vm_boots") or [])))
    if campaign.kernel_environments:  # several kernels: each its own release, in kernels: order
        rows = [(k, v) for k, v in rows if k not in ("kernel", "kernel build")]
        rows.insert(
            2,
            (
                "kernels",
                ", ".join(
                    f"{label} {(e.get('kernel') or {}).get('release') or 'unknown'}"
                    for label, e in campaign.kernel_environments.items()
                ),
            ),
        )
    if "ingested" in env:  # what the fio files said; the machine itself is not in fio's output
        facts = env["ingested"]
        rows = [(k, v) for k, v in rows if k in ("executor", "fio", "host")] + ingested_rows(facts)
    return [(k, str(v)) for k, v in rows if v not in ("", None)]


def vm_boots_text(boots: list[dict]) -> str:
    """The guest boots a VM campaign took: early-boot failures retried, guest crashes in runs."""
    if not boots:
        return ""
    failed = [f for b in boots for f in (b.get("failed_boots") or [])]
    parts = [f"{len(boots)} boot{'s' if len(boots) != 1 else ''}"]
    if failed:
        parts.append(
            f"{len(failed)} early-boot failure{'s' if len(failed) != 1 else ''} retried "
            f"(first: {failed[0].get('reason')}; {failed[0].get('console_log')})"
        )
    for b in boots:
        if b.get("outcome") == "crashed during a run":
            runs = ", ".join(b.get("runs") or []) or "no run in flight"
            parts.append(
                f"guest kernel crashed during run {runs}: {b.get('oops') or 'no oops line'}"
                f" ({b.get('console_log')})"
            )
        elif b.get("outcome") == "no boot":
            parts.append(f"a boot failed every attempt ({b.get('console_log')})")
    return "; ".join(parts)


def _counted(counts: dict, unit: str = "") -> str:
    return ", ".join(f"{v}{unit} ({n} file{'s' if n != 1 else ''})" for v, n in counts.items())


def ingested_rows(facts: dict) -> list[tuple[str, str]]:
    """The environment of ingested runs, as far as fio's output tells it."""
    first, last = facts.get("first_start"), facts.get("last_start")
    return [
        ("fio versions", _counted(facts.get("fio_versions") or {})),
        ("runtime", _counted(facts.get("runtime_s") or {}, " s")),
        ("ramp time", _counted(facts.get("ramp_time_s") or {}, " s")),
        ("started", f"{first} \u2026 {last}" if first and last and first != last else (first or "")),
        ("hosts", ", ".join(facts.get("hostnames") or []) or "not in fio's output (not client/server)"),
        ("failed runs", str(facts.get("failed_runs") or 0)),
        ("kernel, CPU", "not in fio's output"),
    ]


def plan_rows(campaign: CampaignReport) -> list[tuple[str, str]]:
    p = campaign.plan
    done = campaign.status.get("done", 0)
    return [
        (
            "runs",
            f"{p['planned_runs']} planned = {len(p['targets'])} targets \u00d7 {len(p['points'])} points"
            f" \u00d7 {p['rounds']} rounds; {done} done"
            + "".join(f", {n} {s}" for s, n in campaign.status.items() if s != "done"),
        ),
        ("rounds", f"{p['rounds']} (at most {p['max_rounds']})"),
        ("order", str(p["order"])),
        ("seed", str(p["seed"])),
        ("targets", ", ".join(p["targets"])),
        ("runtime", f"{p['runtime']:g} s per run after {p['ramp_time']:g} s ramp"),
    ] + _stopping_rows(p)


def _stopping_rows(plan: dict) -> list[tuple[str, str]]:
    """An adaptive campaign's stopping rule, exactly as it was applied."""
    rule = plan.get("stopping")
    if not rule:
        return []
    return [
        (
            "stopping rule",
            f"{rule['min_rounds']}-{rule['max_rounds']} rounds; a point stops once its "
            f"{rule['metric']} ratio to {rule['baseline']} is settled at \u00b1{rule['margin'] * 100:g} % or its "
            f"CI half-width is within \u00b1{rule['target_ci'] * 100:g} % ({rule['confidence'] * 100:g} % CI, "
            f"{rule['resamples']} bootstrap resamples, seed {rule['seed']})",
        )
    ]


def quality_rows(a: Analysis, reading_order: list[plot_data.Point] = ()) -> list[dict]:
    """Each target's data-quality checks per point, points in reading order."""
    labels = {p.key: p.label() for p in reading_order}
    rows = []
    for side in a.comparisons:
        for p in _in_reading_order(list(reading_order), side):
            for target, q in ((side.baseline, p.quality_baseline), (side.candidate, p.quality_candidate)):
                if q is None:
                    continue
                rows.append(
                    {
                        "point": p.point,
                        "label": labels.get(p.point, p.point),
                        "target": target,
                        "n": q.n,
                        "flags": list(q.flags),
                        "bimodality": q.bimodality_coefficient,
                        "outliers": len(q.outlier_indices),
                        "drift_rho": q.drift_rho,
                        "drift_p": q.drift_p,
                        "mde": q.mde,
                    }
                )
    return rows


def _num(value: float, fmt: str = ".2f") -> str:
    return "-" if value is None or value != value else format(value, fmt)


def _in_reading_order(points: list[plot_data.Point], side) -> list:
    order = {p.key: i for i, p in enumerate(points)}
    return sorted(side.points, key=lambda p: order.get(p.point, len(order)))


# ------------------------------------------------------------------------------------------
# HTML

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.differs td{background:#fde0dc}tr.allowed td{background:#fff3c4}
.emulated{background:#b00020;color:#fff;font-weight:bold;padding:.8em 1em;font-size:1.2em;border-radius:4px}
.faster{color:#006d2c;font-weight:bold}.slower{color:#b00020;font-weight:bold}
.equivalent{color:#00507a;font-weight:bold}.inconclusive{color:#7a5a00}
figure{margin:1.5em 0;border:1px solid #eee;padding:.5em}
figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:.92em;color:#444}pre{background:#f6f6f6;padding:.6em;overflow-x:auto}
.note{color:#555;font-size:.92em}.tag{font-size:.8em;padding:0 .4em;border-radius:3px;background:#eee}
"""


def _e(text) -> str:
    return html.escape(str(text))


def _table(
    headers: list[str],
    rows: list[list[str]],
    classes: list[str] | None = None,
    numeric: set[int] = frozenset(),
) -> str:
    """An HTML table; cells are already-escaped HTML."""
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(
            f"<tr{cls}>"
            + "".join(
                f'<td class="num">{c}</td>' if j in numeric else f"<td>{c}</td>" for j, c in enumerate(row)
            )
            + "</tr>"
        )
    return "\n".join(out) + "</tbody></table>"


_SVG_ID = re.compile(r'\bid="([^"]+)"')
# Where an SVG names one of its ids: the id itself, url(#id) and href="#id".
_SVG_ID_USE = re.compile(r'(\bid="|\(#|href="#)([^"()#\s]+)(?=[")])')


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG document as an element to embed: no XML prolog, ids unique within the page.

    One pass over the text (replacing id by id rescanned the whole figure per id: with glyph
    and clip-path ids that was quadratic, half a minute for a 120-point report)."""
    svg = svg[svg.index("<svg") :]
    ids = set(_SVG_ID.findall(svg))
    return _SVG_ID_USE.sub(lambda m: f"{m[1]}{prefix}-{m[2]}" if m[2] in ids else m[0], svg)


def _verdict_cell(r: compare_format.Row, column: str) -> str:
    if column == compare_format.POINT:  # the label; the point's full key on hover
        return f'<span title="{_e(r.key)}">{_e(r.label)}</span>'
    if column == compare_format.VERDICT:
        return f'<span class="{_e(r.verdict)}">{_e(r.verdict_text())}</span>'
    return _e(r.cell(column))


def _verdicts_html(group: catalogue_mod.KernelGroup) -> str:
    """compare's verdict tables (the same rows, labels and columns as every other format)."""
    a = group.analysis
    parts = [f"<p class='note'><b>warning:</b> {_e(w)}</p>" for w in a.warnings]
    return "\n".join(parts + [_tables_html(compare_format.tables(a))])


def _tables_html(tables: list[compare_format.VerdictTable]) -> str:
    columns = compare_format.ALL_COLUMNS
    numeric = {i for i, col in enumerate(columns) if col in compare_format.NUMERIC}
    parts = []
    for t in tables:
        parts.append(
            f"<h4>{_e(t.header[0])}</h4><p class='note'>{'<br>'.join(_e(x) for x in t.header[1:])}</p>"
        )
        rows = [[_verdict_cell(r, col) for col in columns] for r in t.rows]
        parts.append(_table([t.heading(col) for col in columns], rows, numeric=numeric))
        if t.footer:
            parts.append("<p class='note'>" + "<br>".join(_e(x) for x in t.footer) + "</p>")
        parts.append(
            "<details><summary>Each verdict in words</summary><ul>"
            + "".join(f"<li>{_e(r.sentence)}</li>" for r in t.rows if r.sentence)
            + "</ul></details>"
        )
    return "\n".join(parts)


def _quality_html(group: catalogue_mod.KernelGroup) -> str:
    rows = quality_rows(group.analysis, group.dataset.points)
    body = [
        [
            f'<span title="{_e(r["point"])}">{_e(r["label"])}</span>',
            _e(r["target"]),
            _e(r["n"]),
            _e(", ".join(r["flags"]) or "none"),
            _e(_num(r["bimodality"])),
            _e(r["outliers"]),
            _e(_num(r["drift_rho"])),
            _e(_num(r["drift_p"], ".3g")),
            _e(_num(r["mde"] * 100, ".2f") + " %" if r["mde"] == r["mde"] else "-"),
        ]
        for r in rows
    ]
    classes = [
        "differs" if set(r["flags"]) - {"underpowered"} else ("allowed" if r["flags"] else "") for r in rows
    ]
    return (
        "<p class='note'>multimodal: bimodality coefficient &gt; 5/9 (from 10 runs); outliers: modified "
        "z-score &gt; 3.5; drift: Spearman correlation with run order, p &lt; 0.01; underpowered: below "
        "80 % power to call a shift of one margin faster/slower (the minimum detectable effect, MDE, "
        "exceeds the margin) or to show equivalence of identical drivers.</p>"
        + _table(
            ["point", "target", "n", "flags", "bimodality", "outliers", "drift \u03c1", "drift p", "MDE"],
            body,
            classes,
            numeric={2, 4, 5, 6, 7, 8},
        )
    )


def _fairness_html(campaign: CampaignReport) -> str:
    targets, rows = audit_table(campaign)
    if not targets:
        return "<p class='note'>No fairness audit recorded (no target set-up session: ingested runs?).</p>"
    body, classes = [], []
    for key, values, state in rows:
        tag = {
            "differs": " <span class='tag'>differs</span>",
            "allowed": " <span class='tag'>allowed difference</span>",
        }.get(state, "")
        body.append([_e(key) + tag] + [_e(v) for v in values])
        classes.append(state if state in ("differs", "allowed") else "")
    allowed = ", ".join(campaign.allow_differences) or "none"
    return (
        _table(["setting"] + targets, body, classes)
        + f"<p class='note'>allow_differences: {_e(allowed)}. Highlighted rows differ between targets "
        "(red: not allowed; yellow: listed in allow_differences).</p>"
    )


def _figure_html(report: Report, fig: Plotted, index: int) -> str:
    svg = inline_svg(report.svg(fig), f"f{index}")
    return (
        f'<figure id="{_e(fig.name)}" class="plot"><figcaption><b>{_e(fig.title)}</b>. '
        f"{_e(fig.caption)}</figcaption>{svg}</figure>"
    )


def _kv_html(rows: list[tuple[str, str]]) -> str:
    return _table(["", ""], [[_e(k), _e(v)] for k, v in rows])


def to_html(report: Report) -> str:
    cat = report.catalogue
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # the page may load nothing from anywhere: a report must open offline, years later
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(report.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(report.title)}</h1>",
    ]
    for label in report.emulated_labels:
        out.append(f'<p class="emulated">{_e(label)}</p>')
    out.append("<p class='note'>" + _e(cat.dataset.facts()) + "</p>")
    out.append(
        "<nav><a href='#verdicts'>Verdicts</a> \u00b7 <a href='#quality'>Data quality</a> \u00b7 "
        "<a href='#figures'>Figures</a> \u00b7 <a href='#fairness'>Fairness audit</a> \u00b7 "
        "<a href='#environment'>Environment</a> \u00b7 <a href='#plan'>Plan</a> \u00b7 "
        "<a href='#jobs'>fio jobs</a></nav>"
    )
    out.append("<h2 id='verdicts'>Verdicts</h2>")
    for group in cat.groups:
        if len(cat.groups) > 1:
            out.append(f"<h3>kernel {_e(group.kernel)}</h3>")
        if group.analysis is None:
            out.append(f"<p class='note'>kernel {_e(group.kernel)}: {_e(group.why_no_analysis)}</p>")
        else:
            out.append(_verdicts_html(group))
    if report.gap or report.gap_problem:
        out.append("<h2 id='gap'>Gap between kernels</h2>")
        out += [f"<p class='note'>{_e(line)}</p>" for line in gap_lines(report)]
        if report.gap:
            out.append(_tables_html(compare_format.gap_tables(report.gap)))
    out.append("<h2 id='quality'>Data quality</h2>")
    analysed = [g for g in cat.groups if g.analysis is not None]
    for group in analysed:
        if len(analysed) > 1:
            out.append(f"<h3>kernel {_e(group.kernel)}</h3>")
        out.append(_quality_html(group))
    out.append("<h2 id='figures'>Figures</h2>")
    if cat.skipped:
        out.append("<p class='note'>Not drawn: " + "; ".join(_e(s.reason) for s in cat.skipped) + ".</p>")
    out += [_figure_html(report, f, i) for i, f in enumerate(cat.figures)]
    for title, anchor, render in (
        ("Fairness audit", "fairness", _fairness_html),
        ("Environment", "environment", lambda c: _kv_html(environment_rows(c))),
        ("Plan", "plan", lambda c: _kv_html(plan_rows(c))),
    ):
        out.append(f"<h2 id='{anchor}'>{title}</h2>")
        for c in report.campaigns:
            out.append(f"<h3>{_e(c.name)} <span class='note'>({_e(c.path)})</span></h3>" + render(c))
    out.append(
        "<h2 id='jobs'>fio jobs</h2><p class='note'>The exact job file fio ran for each point and "
        "target (from the point's first finished run; run it by hand with "
        "<code>fio --output-format=json+ FILE</code>).</p>"
    )
    for c in report.campaigns:
        out.append(f"<h3>{_e(c.name)}</h3>")
        for point, target, text in c.jobs:
            out.append(
                f"<details><summary>{_e(point)} \u2014 {_e(target)}</summary><pre>{_e(text)}</pre></details>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------
# Markdown


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return (
        ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
        + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        + [""]
    )


def to_markdown(report: Report, figure_dir: str = "figures") -> str:
    cat = report.catalogue
    out = [f"# {report.title}", ""]
    for label in report.emulated_labels:
        out += [f"> **\u26a0 {label.upper()}**", ""]
    out += [cat.dataset.facts(), "", "## Verdicts", ""]
    for group in cat.groups:
        if group.analysis:
            out += [f"> warning: {w}" for w in group.analysis.warnings] + (
                [""] if group.analysis.warnings else []
            )
        out += (
            [compare_format.markdown(group.analysis)]
            if group.analysis
            else [f"kernel {group.kernel}: {group.why_no_analysis}", ""]
        )
    if report.gap or report.gap_problem:
        out += ["## Gap between kernels", ""] + [line + "  " for line in gap_lines(report)]
        out += [compare_format.markdown_of(compare_format.gap_tables(report.gap))] if report.gap else [""]
    out += ["## Data quality", ""]
    for group in (g for g in cat.groups if g.analysis is not None):
        out += [f"kernel {group.kernel}:", ""] if len(cat.groups) > 1 else []
        out += _md_table(
            ["point", "target", "n", "flags", "bimodality", "outliers", "drift ρ", "drift p", "MDE"],
            [
                [
                    r["label"],
                    r["target"],
                    r["n"],
                    ", ".join(r["flags"]) or "none",
                    _num(r["bimodality"]),
                    r["outliers"],
                    _num(r["drift_rho"]),
                    _num(r["drift_p"], ".3g"),
                    _num(r["mde"] * 100) + " %",
                ]
                for r in quality_rows(group.analysis, group.dataset.points)
            ],
        )
    out += ["## Figures", ""]
    if cat.skipped:
        out += ["Not drawn: " + "; ".join(s.reason for s in cat.skipped) + ".", ""]
    for fig in cat.figures:
        out += [f"### {fig.title}", "", f"![{fig.title}]({figure_dir}/{fig.name}.svg)", "", fig.caption, ""]
    out += ["## Fairness audit", ""]
    for c in report.campaigns:
        targets, rows = audit_table(c)
        out += [f"### {c.name}", ""]
        if not targets:
            out += ["No fairness audit recorded.", ""]
            continue
        marks = {"differs": " **(differs)**", "allowed": " *(allowed difference)*"}
        out += _md_table(["setting"] + targets, [[k + marks.get(state, "")] + v for k, v, state in rows])
        out += [f"allow_differences: {', '.join(c.allow_differences) or 'none'}", ""]
    for title, rows_of in (("Environment", environment_rows), ("Plan", plan_rows)):
        out += [f"## {title}", ""]
        for c in report.campaigns:
            out += [f"### {c.name}", ""] + _md_table(["", ""], [[k, v] for k, v in rows_of(c)])
    out += ["## fio jobs", ""]
    for c in report.campaigns:
        for point, target, text in c.jobs:
            out += [f"**{c.name}: {point} — {target}**", "", "```ini", text.rstrip(), "```", ""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------------------
# Plain text for mailing lists


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text,
        TEXT_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=True,
        break_on_hyphens=False,
    ) or [""]


def _fit_columns(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A fixed-width table squeezed to 72 columns by shortening the widest cells."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    while sum(widths) + 2 * (len(widths) - 1) > TEXT_WIDTH and max(widths) > 6:
        widths[widths.index(max(widths))] -= 1

    def cut(value: str, width: int) -> str:
        value = str(value)
        return value if len(value) <= width else value[: width - 1] + "\u2026"

    return ["  ".join(cut(c, w).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [headers] + rows]


def to_text(report: Report) -> str:
    cat = report.catalogue
    out = _wrap(report.title)
    for label in report.emulated_labels:
        out += ["", *_wrap(f"*** {label.upper()} ***")]
    out += ["", *_wrap(cat.dataset.facts()), ""]
    for group in cat.groups:
        if group.analysis:
            out += [line for w in group.analysis.warnings for line in _wrap(f"warning: {w}")]
            out += compare_format.text(group.analysis).rstrip("\n").splitlines() + [""]
        else:
            out += _wrap(f"kernel {group.kernel}: {group.why_no_analysis}") + [""]
    out += [line for text in gap_lines(report) for line in _wrap(text)]
    if report.gap:
        out += compare_format.text_of(compare_format.gap_tables(report.gap)).rstrip("\n").splitlines() + [""]
    for c in report.campaigns:
        out += [f"Campaign {c.name}", "-" * min(TEXT_WIDTH, len(c.name) + 9)]
        out += [line for k, v in environment_rows(c) + plan_rows(c) for line in _wrap(f"{k}: {v}")]
        targets, rows = audit_table(c)
        if targets:
            out += ["", "Fairness audit (* differs, + allowed difference):"]
            out += _fit_columns(
                ["setting"] + targets,
                [[{"differs": "*", "allowed": "+"}.get(s, " ") + k] + v for k, v, s in rows],
            )
            out += _wrap(f"allow_differences: {', '.join(c.allow_differences) or 'none'}")
        if c.jobs:
            point, target, text = c.jobs[0]
            out += ["", *_wrap(f"fio job of {point} on {target} (every point's job is in report.html):")]
            out += [line for raw in text.rstrip().splitlines() for line in _wrap(raw, "  ")]
        out.append("")
    if cat.skipped:
        out += _wrap("Figures not drawn: " + "; ".join(s.reason for s in cat.skipped) + ".")
    return "\n".join(line[:TEXT_WIDTH].rstrip() for line in out).rstrip() + "\n"


# ------------------------------------------------------------------------------------------
# Files


def _write_readable(path: Path, text: str) -> None:
    store.atomic_write_text(path, text)
    path.chmod(0o644)  # a report is for sharing; the temp file it was renamed from was 0600


def write(report: Report, out: Path) -> dict[str, Path]:
    """report.html, report.md (+ figures/*.svg) and report.txt under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    for fig in report.catalogue.figures:
        _write_readable(figures / f"{fig.name}.svg", report.svg(fig))
    paths = {"html": out / "report.html", "markdown": out / "report.md", "text": out / "report.txt"}
    _write_readable(paths["html"], to_html(report))
    _write_readable(paths["markdown"], to_markdown(report, figures.name))
    _write_readable(paths["text"], to_text(report))
    return paths
