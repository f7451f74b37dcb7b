"""`blkcmp report`: the HTML page in headless Chromium, the Markdown twin, the 72-column text.

Chromium opens the real host campaign's report (conftest's session campaign) straight from
disk: the page must render with no console message at all (a blocked fetch or a script error
would log one), every figure must have a size, and the page must load nothing.  To measure, a
copy of the page gets a small script that writes what it found into the DOM, read back with
--dump-dom.  Specimen campaigns (known numbers, several kernels, unfair settings) check content.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import specimen
from conftest import no_traceback, run_cli

from bench import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# `make test` installs chromium (scripts/install.sh test): without it this is a set-up failure,
# not something to skip quietly. BLKCMP_SKIP_BROWSER=1 opts out on a machine without it.
needs_chromium = pytest.mark.skipif(
    bool(os.environ.get("BLKCMP_SKIP_BROWSER")), reason="BLKCMP_SKIP_BROWSER set"
)

PROBE = """<script>
(function () {
  var figures = Array.prototype.map.call(document.querySelectorAll("figure.plot"), function (f) {
    var svg = f.querySelector("svg"), box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    var style = svg ? getComputedStyle(svg) : {display: "none", visibility: "hidden"};
    return {id: f.id, width: box.width, height: box.height, display: style.display,
            visibility: style.visibility};
  });
  var out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify({title: document.title, figures: figures,
                                    resources: performance.getEntriesByType("resource").length});
  document.body.appendChild(out);
})();
</script>"""


def chromium(url: str, profile: Path) -> subprocess.CompletedProcess:
    assert CHROMIUM, "chromium is missing: `make test` installs it (scripts/install.sh test)"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1024",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def unfair_specimens(tmp_path_factory) -> list[Path]:
    """Two kernels, the second emulated; rnull with other tags (refused) and write cache (allowed)."""
    root = tmp_path_factory.mktemp("report")
    audits = {
        "null_blk": dict(specimen.AUDIT),
        "rnull": dict(specimen.AUDIT, nr_tags="64", write_cache="write back"),
    }
    return [
        specimen.create(
            root,
            specimen.Specimen(
                name="rep",
                kernel=kernel,
                rounds=4,
                matrix={"rw": ["randread", "randwrite"], "bs": ["4k"], "iodepth": [1, 16]},
                factor=lambda t, p: 1.05 if t == "rnull" else 1.0,
                audits=audits,
                allow_differences=["write_cache"],
                emulated=emulated,
                seed=i,
            ),
        )
        for i, (kernel, emulated) in enumerate((("6.12.57", False), ("7.2.13", True)))
    ]


@pytest.fixture(scope="module")
def specimen_report(unfair_specimens, tmp_path_factory) -> tuple[report.Report, dict[str, Path]]:
    built = report.collect(unfair_specimens)
    return built, report.write(built, tmp_path_factory.mktemp("out"))


# ------------------------------------------------------------------------------------------
# Chromium


@needs_chromium
def test_html_report_renders_in_chromium_with_every_figure_visible(host_campaign, tmp_path):
    out = tmp_path / "report"
    proc = run_cli("report", host_campaign, "--out", out, timeout=600)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    page = out / "report.html"
    figures = page.read_text().count('<figure id="')
    assert figures == 10

    plain = chromium(page.as_uri(), tmp_path / "profile-1")
    assert plain.returncode == 0, plain.stderr[-2000:]
    console = [line for line in plain.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert "blkcmp report: plots-host" in plain.stdout

    # the probe is a script, which the page's own policy forbids: the copy allows inline scripts
    probed = tmp_path / "probed.html"
    html = page.read_text().replace(
        "default-src 'none'; style-src 'unsafe-inline'",
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
    )
    probed.write_text(html.replace("</body>", PROBE + "</body>"))
    dumped = chromium(probed.as_uri(), tmp_path / "profile-2")
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', dumped.stdout, re.S)
    assert match, dumped.stderr[-2000:]
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["resources"] == 0  # nothing fetched: fonts, styles, images are all inline
    assert len(result["figures"]) == figures
    for fig in result["figures"]:
        assert fig["width"] > 300 and fig["height"] > 150, fig
        assert fig["display"] != "none" and fig["visibility"] == "visible", fig
    assert [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line] == []


# ------------------------------------------------------------------------------------------
# Content


def test_html_is_self_contained_and_says_everything(specimen_report):
    built, paths = specimen_report
    html = paths["html"].read_text()
    assert "Content-Security-Policy" in html and "<script" not in html
    assert not re.search(r'(?:src|href)="(?!#)', html)  # no file or URL referenced, only anchors
    assert html.count("<svg") == len(built.catalogue.figures) and "<?xml" not in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # inline SVGs do not clash
    # the emulated label comes first and loudly
    first_heading = html.index("<h2")
    assert html.index('class="emulated"') < first_heading and "emulated (TCG)" in html
    for needle in (
        "Verdicts",
        "Data quality",
        "Fairness audit",
        "Environment",
        "Plan",
        "fio jobs",
        "kernel 6.12.57",
        "kernel 7.2.13",
        "Specimen CPU",
        "0000000specimen",
        "seed",
        "interleaved",
        "[global]",
        "rw=randwrite",
        "faster",
        "allow_differences: write_cache",
    ):
        assert needle in html, needle
    # fairness: the refused difference and the allowed one are marked as such
    assert re.search(
        r'<tr class="differs"><td>nr_tags <span class=\'tag\'>differs</span></td><td>256</td><td>64</td>',
        html,
    )
    assert re.search(
        r'<tr class="allowed"><td>write_cache <span class=\'tag\'>allowed difference</span>', html
    )
    assert 'class="same"' not in html


def test_markdown_links_figures_written_beside_it(specimen_report):
    built, paths = specimen_report
    md = paths["markdown"].read_text()
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.svg)\)", md)
    assert len(links) == len(built.catalogue.figures)
    for link in links:
        svg = (paths["markdown"].parent / link).read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "EMULATED (TCG)" in md and "| nr_tags **(differs)** | 256 | 64 |" in md
    assert "```ini" in md and "kernel-trend.svg" in md


def test_text_fits_a_mailing_list(specimen_report):
    built, paths = specimen_report
    text = paths["text"].read_text()
    assert all(len(line) <= 72 for line in text.splitlines())
    assert "*** EMULATED (TCG)" in text.splitlines()[2]
    assert "rnull vs null_blk (baseline)" in text and "faster" in text
    assert re.search(r"^\*nr_tags +256 +64$", text, re.M) and re.search(r"^\+write_cache ", text, re.M)
    assert "[global]" in text


def test_vm_boots_are_said_in_the_environment():
    from bench.report import vm_boots_text

    assert vm_boots_text([]) == ""
    boots = [
        {
            "console_log": "logs/console-01.log",
            "outcome": "crashed during a run",
            "runs": ["r0003"],
            "oops": "Kernel panic - not syncing: sysrq triggered crash",
            "failed_boots": [
                {
                    "attempt": 1,
                    "reason": "Oops: int3: 0000 [#1]",
                    "console_log": "logs/console-01.boot-failed-1.log",
                }
            ],
        },
        {"console_log": "logs/console-02.log", "outcome": "exit 0", "failed_boots": []},
    ]
    assert vm_boots_text(boots) == (
        "2 boots; 1 early-boot failure retried (first: Oops: int3: 0000 [#1]; "
        "logs/console-01.boot-failed-1.log); guest kernel crashed during run r0003: "
        "Kernel panic - not syncing: sysrq triggered crash (logs/console-01.log)"
    )
