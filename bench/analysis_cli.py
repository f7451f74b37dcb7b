"""Arguments and handlers of the analysis commands: compare (and plot, report when present)."""

from __future__ import annotations

import sys
from pathlib import Path



def add_commands(sub) -> None:
    p = sub.add_parser("compare", help="candidate vs baseline per point, with CIs and verdicts")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="campaign directories")
    p.add_argument("--baseline", help="target=NAME (or kernel=RELEASE, KEY=VALUE; default: the workload's baseline)")
    p.add_argument("--by", default="target", help="target | kernel | host | a matrix key (default: target)")
    p.add_argument("--metric", default="iops",
                   help="iops | bw | read_iops | write_iops | clat_mean | clat_p50 | clat_p99 | clat_p999")
    p.add_argument("--margin", type=float, default=0.02, help="equivalence margin as a fraction (0.02 = ±2 %%)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--correction", choices=("holm", "bh"), default="holm",
                   help="multiple-comparison correction across points")
    p.add_argument("--format", choices=("table", "markdown", "text", "csv", "json"), default="table")
    p.add_argument("--fail-on", choices=("slower",), help="exit 1 when any point is slower (a CI gate)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    add_plot(sub)
    add_report(sub)


def cmd_compare(args) -> int:
    from bench import analysis, compare_format as fmt
    a = analysis.analyse(args.dirs, by=args.by, metric=args.metric, baseline=args.baseline,
                         margin=args.margin, alpha=args.alpha, correction=args.correction, seed=args.seed)
    for line in a.warnings:
        print(f"blkcmp: warning: {line}", file=sys.stderr)
    if args.format == "table":
        fmt.table(a)
    else:
        sys.stdout.write({"markdown": fmt.markdown, "text": fmt.text, "csv": fmt.to_csv,
                          "json": fmt.to_json}[args.format](a))
    if args.fail_on == "slower":
        slower = [p.point for s in a.comparisons for p in s.points if p.verdict and p.verdict.verdict == "slower"]
        if slower:
            print(f"blkcmp: {len(slower)} point(s) slower: {', '.join(slower)} (--fail-on slower)", file=sys.stderr)
            return 1
    return 0


# ------------------------------------------------------------------------------------------
# plot and report


def _add_figure_analysis_args(p) -> None:
    """The analysis options plot and report share with compare (sides are always targets)."""
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="campaign directories")
    p.add_argument("--baseline", help="target=NAME (default: the workload's baseline)")
    p.add_argument("--metric", default="iops",
                   help="metric of the ratio forest and the sample plots: iops | bw | read_iops | "
                        "write_iops | clat_mean | clat_p50 | clat_p99 | clat_p999")
    p.add_argument("--margin", type=float, default=0.02, help="equivalence margin as a fraction (0.02 = ±2 %%)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--correction", choices=("holm", "bh"), default="holm",
                   help="multiple-comparison correction across points")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def add_plot(sub) -> None:
    p = sub.add_parser("plot", help="draw every figure of one or more campaigns")
    _add_figure_analysis_args(p)
    p.add_argument("--out", type=Path, default=Path("plots"), metavar="DIR", help="where figures go (default: plots)")
    p.add_argument("--format", default="png,svg", help="comma-separated: png, svg, pdf (default: png,svg)")


def add_report(sub) -> None:
    p = sub.add_parser("report", help="self-contained HTML report, Markdown and 72-column text")
    _add_figure_analysis_args(p)
    p.add_argument("--out", type=Path, default=Path("report"), metavar="DIR",
                   help="where report.html, report.md, report.txt and figures/ go (default: report)")


def _analysis_args(args) -> dict:
    return {"metric": args.metric, "baseline": args.baseline, "margin": args.margin, "alpha": args.alpha,
            "correction": args.correction, "seed": args.seed}


def _print_warnings(built) -> None:
    for group in built.groups:
        for line in (group.analysis.warnings if group.analysis else []):
            print(f"blkcmp: warning: {line}", file=sys.stderr)


def cmd_plot(args) -> int:
    from bench.plots import catalogue
    formats = catalogue.parse_formats(args.format)
    built = catalogue.build(args.dirs, **_analysis_args(args))
    _print_warnings(built)
    written = catalogue.write(built.figures, args.out, formats)
    for skipped in built.skipped:
        print(f"skipped {skipped.name}: {skipped.reason}")
    print(f"{len(built.figures)} figures ({', '.join(formats)}): {len(written)} files in {args.out}")
    return 0


def cmd_report(args) -> int:
    from bench import report
    built = report.collect(args.dirs, **_analysis_args(args))
    _print_warnings(built.catalogue)
    paths = report.write(built, args.out)
    for skipped in built.catalogue.skipped:
        print(f"skipped {skipped.name}: {skipped.reason}")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
