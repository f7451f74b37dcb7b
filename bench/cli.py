"""The `blkcmp` command line: every command's arguments, and the dispatch to its handler.

Each subcommand names its handler with `set_defaults(handler=…)`: `commands.py` holds what the
run-side commands do, `analysis_cli.py` what compare, plot and report do. The analysis options
(metric, margin, alpha, correction, sides, baseline, seed) are checked once, by
`AnalysisOptions.parse`, in those handlers; their defaults come from bench.stats.defaults.

Exit codes everywhere: 0 success, 2 bad input or usage, 1 a failure while running. Errors are
one line on stderr (one per problem), never a traceback (BLKCMP_DEBUG=1 shows one).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from bench import __version__, analysis_cli, commands
from bench.analysis_options import DEFAULT_METRIC, METRICS
from bench.errors import BlkcmpError, is_storage_error, shorten_line, storage_error
from bench.stats.defaults import (
    CORRECTIONS,
    DEFAULT_ALPHA,
    DEFAULT_CORRECTION,
    DEFAULT_MARGIN,
)
from bench.units import margin_text

DEFAULT_RESULTS = Path("results")
COMPARE_FORMATS = ("table", "markdown", "text", "csv", "json")


# ------------------------------------------------------------------------------------------
# Shared arguments


def _add_margin_alpha(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"{what}equivalence margin as a fraction (default {DEFAULT_MARGIN:g} = "
        f"{margin_text(DEFAULT_MARGIN)})".replace("%", "%%"),
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help=f"{what}significance level of the family of points (default {DEFAULT_ALPHA:g})",
    )


def _add_analysis_args(p: argparse.ArgumentParser, *, metric_help: str) -> None:
    """The analysis options compare, plot and report share (checked by AnalysisOptions.parse)."""
    p.add_argument(
        "--metric",
        default=DEFAULT_METRIC,
        help=f"{metric_help}: {' | '.join(METRICS)} (default {DEFAULT_METRIC})",
    )
    _add_margin_alpha(p)
    p.add_argument(
        "--correction",
        default=DEFAULT_CORRECTION,
        help="multiple-comparison correction across points: "
        + ", ".join(f"{k} ({v})" for k, v in CORRECTIONS.items())
        + f" (default {DEFAULT_CORRECTION})",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("workload", nargs="?", type=Path, help="workload YAML file")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue an interrupted campaign")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="where campaign directories go")
    p.add_argument("--seed", type=int, help="seed of the run order (overrides the workload's)")
    p.add_argument(
        "--kernel",
        action="append",
        metavar="[LABEL=]SPEC",
        help="run inside a VM booted on this kernel (a cached version, a cached kernel's name or label, "
        "or a bzImage); repeat it for a campaign of several kernels (replaces the workload's kernels:)",
    )
    p.add_argument(
        "--boots",
        type=int,
        metavar="N",
        help="VM campaigns: separate boots per kernel (replaces the workload's boots:; default 1)",
    )
    # internal: the guest of one boot slot runs only that slot's runs (bench.executors.vm)
    p.add_argument("--boot-slot", type=int, help=argparse.SUPPRESS)
    p.add_argument(
        "--auto",
        action="store_true",
        help="run on the host if it has every driver of the workload, otherwise in the VM on "
        "the cached 7.2 kernel",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output, no end-of-run tables")
    p.add_argument(
        "--vm-timeout",
        type=float,
        default=None,
        metavar="S",
        help="kill the guest after S seconds (default: from the plan)",
    )
    p.add_argument(
        "--boot-attempts",
        type=int,
        default=None,
        metavar="N",
        help="boot a VM guest up to N times when it fails before the campaign starts "
        "(default: $BLKCMP_BOOT_ATTEMPTS or 3)",
    )


# ------------------------------------------------------------------------------------------
# Commands


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="blkcmp", description="Is the Rust block driver as fast as the C one?")
    top.add_argument("--version", action="version", version=f"blkcmp {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("schema", help="print the workload JSON Schema")
    p.set_defaults(handler=commands.cmd_schema)

    p = sub.add_parser("plan", help="print the expanded plan of a workload")
    p.add_argument("workload", type=Path)
    p.add_argument("--export-fio", type=Path, metavar="DIR", help="write each distinct job as a .fio file")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--pilot",
        type=Path,
        metavar="DIR",
        help="say how many rounds each point needs for 80 %% power, from this pilot campaign",
    )
    _add_margin_alpha(p, "with --pilot: ")
    p.set_defaults(handler=commands.cmd_plan)

    p = sub.add_parser("run", help="run a workload's campaign (or --resume one)")
    _add_run_args(p)
    p.set_defaults(handler=commands.cmd_run)

    p = sub.add_parser("ingest", help="import fio JSON files into a campaign directory")
    p.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="fio JSON output files; a directory stands for its *.json files",
    )
    p.add_argument("--into", type=Path, required=True, metavar="DIR")
    p.add_argument("--target", help="target name for these runs (default: the fio job name)")
    p.set_defaults(handler=commands.cmd_ingest)

    p = sub.add_parser("export", help="one row per run × fio job, as CSV or JSON")
    p.add_argument("dir", type=Path)
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    p.add_argument(
        "--timeseries",
        action="store_true",
        help="one row per time-series sample (workloads with `timeseries:`)",
    )
    p.set_defaults(handler=commands.cmd_export)

    p = sub.add_parser("reindex", help="rebuild a campaign's index from its run directories")
    p.add_argument("dir", type=Path)
    p.set_defaults(handler=commands.cmd_reindex)

    p = sub.add_parser("ls", help="list campaigns and their status")
    p.add_argument("dir", nargs="?", type=Path, default=DEFAULT_RESULTS)
    p.set_defaults(handler=commands.cmd_ls)

    p = sub.add_parser("cleanup", help="remove devices and files blkcmp created and left behind")
    p.add_argument("--force", action="store_true", help="also those of blkcmp processes still running")
    p.set_defaults(handler=commands.cmd_cleanup)

    p = sub.add_parser("targets", help="drivers available here (or on a test kernel) and their options")
    p.add_argument("--kernel", help="a cached kernel version or a bzImage path")
    p.set_defaults(handler=commands.cmd_targets)

    k = sub.add_parser("kernel", help="build and list test kernels")
    ksub = k.add_subparsers(dest="kernel_command", required=True, metavar="ACTION")
    kb = ksub.add_parser(
        "build",
        help="build a test kernel with null_blk and rnull (cached): Debian's source, or your own tree",
    )
    kb.add_argument("version", nargs="?", help="Debian's linux-source-X.Y: 6.12 or 7.2 (or --source)")
    kb.add_argument(
        "--source",
        metavar="DIR|TARBALL",
        help="build this tree instead: a git checkout, a directory or a tarball",
    )
    kb.add_argument(
        "--patch",
        action="append",
        default=[],
        metavar="FILE",
        help="apply this patch (patch -p1) before building; repeat for several, in order",
    )
    kb.add_argument(
        "--config-fragment",
        metavar="FILE",
        help="CONFIG_ lines added after blkcmp's own (yours win; null_blk, rnull and configfs must stay y)",
    )
    kb.add_argument(
        "--label",
        help="what --kernel and reports call it, and the -LABEL in its `uname -r` (default from the source)",
    )
    kb.add_argument(
        "--no-overflow-checks", action="store_true", help="build with CONFIG_RUST_OVERFLOW_CHECKS off"
    )
    kb.add_argument(
        "--toolchain",
        choices=("sid", "trixie"),
        default=None,
        help="Debian suite whose gcc/rustc/bindgen build it (default: trixie for 6.12, sid for 7.2)",
    )
    kb.set_defaults(handler=commands.cmd_kernel_build)
    kl = ksub.add_parser("list", help="cached test kernels")
    kl.set_defaults(handler=commands.cmd_kernel_list)

    p = sub.add_parser("compare", help="candidate vs baseline per point, with CIs and verdicts")
    p.add_argument("dirs", nargs="*", type=Path, metavar="DIR", help="campaign directories")
    p.add_argument(
        "--baseline", help="target=NAME (or kernel=RELEASE, KEY=VALUE; default: the workload's baseline)"
    )
    p.add_argument(
        "--by",
        default="target",
        help="target | kernel | host | gap (the candidate/baseline gap compared across kernels, "
        "--baseline kernel=X) | a matrix key (default: target)",
    )
    _add_analysis_args(p, metric_help="metric compared")
    p.add_argument(
        "--format",
        choices=COMPARE_FORMATS,
        default="table",
        help="table: for the terminal (fits its width); text: 72 columns, for mail",
    )
    p.add_argument("--fail-on", choices=("slower",), help="exit 1 when any point is slower (a CI gate)")
    p.add_argument(
        "--pilot",
        type=Path,
        metavar="DIR",
        help="also say how many rounds each point needs for 80 %% power, from this pilot campaign",
    )
    p.set_defaults(handler=analysis_cli.cmd_compare)

    p = sub.add_parser("plot", help="draw every figure of one or more campaigns")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="campaign directories")
    p.add_argument("--baseline", help="target=NAME (default: the workload's baseline)")
    _add_analysis_args(p, metric_help="metric of the ratio forest and the sample plots")
    p.add_argument(
        "--out", type=Path, default=Path("plots"), metavar="DIR", help="where figures go (default: plots)"
    )
    p.add_argument("--format", default="png,svg", help="comma-separated: png, svg, pdf (default: png,svg)")
    p.set_defaults(handler=analysis_cli.cmd_plot)

    p = sub.add_parser("report", help="self-contained HTML report, Markdown and 72-column text")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="campaign directories")
    p.add_argument("--baseline", help="target=NAME (default: the workload's baseline)")
    _add_analysis_args(p, metric_help="metric of the verdicts, the ratio forest and the sample plots")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("report"),
        metavar="DIR",
        help="where report.html, report.md, report.txt and figures/ go (default: report)",
    )
    p.set_defaults(handler=analysis_cli.cmd_report)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except BlkcmpError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"blkcmp: error: {shorten_line(line)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "blkcmp: interrupted; finished runs are kept (resume with `blkcmp run --resume DIR`)",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 — the one place every error is printed
        if os.environ.get("BLKCMP_DEBUG"):
            traceback.print_exc()
        if is_storage_error(exc):  # a full or read-only filesystem, wherever it was met
            print(f"blkcmp: error: {shorten_line(str(storage_error(exc)))}", file=sys.stderr)
            return 1
        # a bug: still one line, unless asked for the traceback
        print(
            shorten_line(f"blkcmp: internal error: {type(exc).__name__}: {exc}")
            + " (BLKCMP_DEBUG=1 shows where)",
            file=sys.stderr,
        )
        return 1
