"""What compare, plot and report do with their parsed arguments (cli.py declares the arguments).

Each handler first turns the analysis arguments into one checked `AnalysisOptions`: a bad
value is refused here, before any campaign is read, and nothing below checks it again.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from bench.analysis_options import AnalysisOptions
from bench.errors import UsageError


def options_of(args, by: str = "target") -> AnalysisOptions:
    """The analysis options of compare, plot and report, checked once."""
    return AnalysisOptions.parse(
        metric=args.metric,
        margin=args.margin,
        alpha=args.alpha,
        correction=args.correction,
        by=by,
        baseline=args.baseline,
        seed=args.seed,
    )


def _pilot_output(pilot, fmt_name: str) -> str:
    import csv
    import io
    import json

    from bench import sizing

    if fmt_name == "json":
        return json.dumps([s.to_dict() for s in pilot.sizes], indent=1) + "\n"
    if fmt_name == "csv":
        rows = [s.to_dict() for s in pilot.sizes]
        buf = io.StringIO()
        writer = csv.DictWriter(
            buf,
            fieldnames=list(sizing.Sizing.to_dict(pilot.sizes[0])) if rows else ["point"],
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        return buf.getvalue()
    return "\n".join(sizing.lines(pilot)) + "\n"


def cmd_compare(args) -> int:
    from bench import analysis, sizing
    from bench import compare_format as fmt

    options = options_of(args, by=args.by)
    if not args.dirs and not args.pilot:
        raise UsageError("compare: give campaign directories (or --pilot DIR)")
    if args.dirs and args.pilot and args.format == "csv":
        raise UsageError(
            "--pilot with campaign directories: use --format table, text, markdown or json "
            "(csv holds one table)"
        )
    # the pilot is sized as `compare --by target` of that campaign, at these margin, alpha and metric
    pilot = sizing.load(args.pilot, replace(options, by="target", baseline=None)) if args.pilot else None
    if not args.dirs:
        sys.stdout.write(_pilot_output(pilot, args.format))
        return 0
    if options.by == "gap":
        from bench import kernel_gap

        a = kernel_gap.analyse_gap(args.dirs, options)
    else:
        a = analysis.analyse(args.dirs, options)
    for line in a.warnings:
        print(f"blkcmp: warning: {line}", file=sys.stderr)
    if args.format == "table":
        fmt.table(a)
    elif args.format == "json" and pilot:
        import json

        doc = json.loads(fmt.to_json(a)) | {"sizing": json.loads(_pilot_output(pilot, "json"))}
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    else:
        sys.stdout.write(
            {"markdown": fmt.markdown, "text": fmt.text, "csv": fmt.to_csv, "json": fmt.to_json}[args.format](
                a
            )
        )
    if pilot and args.format in ("table", "text", "markdown"):
        sys.stdout.write("\n" + _pilot_output(pilot, "text"))
    if args.fail_on == "slower":
        sides = a.gaps if options.by == "gap" else a.comparisons
        slower = [p.point for s in sides for p in s.points if p.verdict and p.verdict.verdict == "slower"]
        if slower:
            print(
                f"blkcmp: {len(slower)} point(s) slower: {', '.join(slower)} (--fail-on slower)",
                file=sys.stderr,
            )
            return 1
    return 0


def _print_warnings(built) -> None:
    for group in built.groups:
        for line in group.analysis.warnings if group.analysis else []:
            print(f"blkcmp: warning: {line}", file=sys.stderr)


def cmd_plot(args) -> int:
    from bench.plots import catalogue

    options = options_of(args)
    formats = catalogue.parse_formats(args.format)
    built = catalogue.build(args.dirs, options)
    _print_warnings(built)
    written = catalogue.write(built.figures, args.out, formats)
    for skipped in built.skipped:
        print(f"skipped {skipped.name}: {skipped.reason}")
    print(f"{len(built.figures)} figures ({', '.join(formats)}): {len(written)} files in {args.out}")
    return 0


def cmd_report(args) -> int:
    from bench import report

    built = report.collect(args.dirs, options_of(args))
    _print_warnings(built.catalogue)
    paths = report.write(built, args.out)
    for skipped in built.catalogue.skipped:
        print(f"skipped {skipped.name}: {skipped.reason}")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
