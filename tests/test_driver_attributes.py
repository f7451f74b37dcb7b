"""Driver options probed from the attribute files of a configfs device directory, the name
mapping between null_blk and rnull, the refusals, and the fairness audit's read-back of every
attribute both drivers have (issue 13, items 4 and 7).

STAND-IN: the out-of-tree rnull (the feature-parity series) cannot exist here — its source is not
available, and this host's kernel has neither null_blk nor rnull. These tests therefore run
blkcmp's real target code against a configfs-shaped directory tree in tmp (`StandInTree`), laid
out as each driver lays out its configfs: the out-of-tree rnull's 29 attributes with their
defaults and its garbled `features` string (`memory_backedsubmit_queues`, landscape-2026 §2),
mainline 7.2's rnull (5 attributes) and Linux 7.2's null_blk. The one thing the stand-in adds is
what configfs itself does and a plain directory cannot: mkdir fills a device directory with the
driver's attribute files (at their defaults), rmdir removes it with them. The real drivers are
exercised in the VM tier (tests/test_vm_drivers.py, tests/test_vm_lifecycle.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import campaign, ledger
from bench.errors import UsageError
from bench.targets import blockdev, configfs
from bench.targets.base import Context
from bench.targets.nullblk import NullBlkTarget
from bench.targets.rnull import RnullTarget, option_problems
from bench.workload import QueueSettings, loads

# The out-of-tree rnull (Hindborg's tree, v2 58/83 attribute indices 0-28), with its defaults.
RNULL_OOT = {
    "power": "0",
    "blocksize": "4096",
    "rotational": "0",
    "size": "4096",
    "irqmode": "0",
    "completion_nsec": "0",
    "memory_backed": "0",
    "submit_queues": "1",
    "use_per_node_hctx": "0",
    "home_node": "-1",
    "discard": "0",
    "no_sched": "0",
    "badblocks": "",
    "badblocks_once": "0",
    "badblocks_partial_io": "0",
    "cache_size_mib": "0",
    "mbps": "0",
    "blocking": "0",
    "shared_tags": "0",
    "hw_queue_depth": "64",
    "zoned": "0",
    "zone_size": "256",
    "zone_capacity": "0",
    "zone_nr_conv": "0",
    "zone_max_open": "0",
    "zone_max_active": "0",
    "zone_append_max_sectors": "4294967295",
    "poll_queues": "0",
    "fua": "1",
}
# Its features string as metaspace/linux@19a34552 and the latest version print it: a line
# continuation inside the string literal swallows the comma after memory_backed.
RNULL_OOT_FEATURES = (
    "blocksize,size,rotational,irqmode,completion_nsec,memory_backedsubmit_queues,"
    "use_per_node_hctx,home_node,discard,no_sched,badblocks,badblocks_once,badblocks_partial_io,"
    "cache_size_mib,mbps,blocking,shared_tags,hw_queue_depth,zoned,zone_size,zone_capacity,"
    "zone_nr_conv,zone_max_open,zone_max_active,zone_append_max_sectors,poll_queues,fua"
)
RNULL_7_2 = {"power": "0", "blocksize": "4096", "rotational": "0", "size": "4096", "irqmode": "0"}
RNULL_7_2_FEATURES = "blocksize,size,rotational,irqmode"
# Linux 7.2's null_blk after `modprobe null_blk nr_devices=0` (defaults from the module parameters).
NULL_BLK_7_2 = {
    "badblocks": "",
    "badblocks_once": "0",
    "badblocks_partial_io": "0",
    "blocking": "0",
    "blocksize": "512",
    "cache_size": "0",
    "completion_nsec": "10000",
    "discard": "0",
    "fua": "1",
    "home_node": "4294967295",
    "hw_queue_depth": "64",
    "index": "0",
    "irqmode": "1",
    "max_sectors": "0",
    "mbps": "0",
    "memory_backed": "0",
    "no_sched": "0",
    "poll_queues": "1",
    "power": "0",
    "queue_mode": "2",
    "rotational": "0",
    "shared_tag_bitmap": "0",
    "shared_tags": "0",
    "size": "256000",
    "submit_queues": "1",
    "use_per_node_hctx": "0",
    "virt_boundary": "0",
    "zone_append_max_sectors": "2147483647",
    "zone_capacity": "0",
    "zone_full": "0",
    "zone_max_active": "0",
    "zone_max_open": "0",
    "zone_nr_conv": "0",
    "zone_offline": "",
    "zone_readonly": "",
    "zone_size": "256",
    "zoned": "0",
}
NULL_BLK_7_2_FEATURES = ",".join(
    k for k in sorted(NULL_BLK_7_2) if k not in ("zone_offline", "zone_readonly")
)


class StandInTree(configfs.Tree):
    """A configfs-shaped tree in tmp (see the module docstring: the one stand-in)."""

    def __init__(self, root: Path, layouts: dict[str, tuple[dict[str, str], str]]):
        super().__init__(root)
        self.layouts = {name: attrs for name, (attrs, _) in layouts.items()}
        for name, (_, features) in layouts.items():
            (root / name).mkdir(parents=True)
            (root / name / "features").write_text(features + "\n")

    def mkdir(self, path: Path) -> None:
        path.mkdir()
        for attr, default in self.layouts[path.parent.name].items():
            (path / attr).write_text(default + "\n")

    def rmdir(self, path: Path) -> None:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("BLKCMP_STATE_DIR", str(tmp_path / "state"))


def tree(tmp_path: Path, rnull: str = "oot") -> StandInTree:
    layouts = {"nullb": (NULL_BLK_7_2, NULL_BLK_7_2_FEATURES)}
    layouts["rnull"] = (RNULL_OOT, RNULL_OOT_FEATURES) if rnull == "oot" else (RNULL_7_2, RNULL_7_2_FEATURES)
    return StandInTree(tmp_path / "configfs", layouts)


def target(cls, cfs: configfs.Tree, options: dict, recreate: str = "session"):
    made = cls("t", options, QueueSettings(), Context("test", configfs=cfs))
    made.recreate = recreate
    return made


def test_the_probe_reads_the_attribute_files_not_the_garbled_features_string(tmp_path, state):
    cfs = tree(tmp_path)
    sub = cfs.subsystem("rnull")
    features = configfs.read_features(sub)
    assert "memory_backedsubmit_queues" in features and "submit_queues" not in features
    offered, source = configfs.offered(cfs, sub, "rnull-configfs")
    assert source == "attribute files"
    assert offered == set(RNULL_OOT) - {"power"}
    assert {"memory_backed", "submit_queues", "cache_size_mib", "hw_queue_depth"} <= offered
    # The probe directory is gone again, and so is its record in the state file.
    assert sorted(p.name for p in sub.iterdir()) == ["features"]
    assert ledger.resources() == {}
    # What the garbled string would have refused, the probe lets through.
    assert target(RnullTarget, cfs, {"submit_queues": 4, "memory_backed": 1}).kernel_problems() == []


def test_a_directory_that_comes_up_empty_falls_back_to_the_features_string(tmp_path, state):
    cfs = tmp_path / "plain"
    (cfs / "rnull").mkdir(parents=True)
    (cfs / "rnull" / "features").write_text(RNULL_7_2_FEATURES + "\n")
    offered, source = configfs.offered(configfs.Tree(cfs), cfs / "rnull", "rnull-configfs")
    assert (offered, source) == (set(RNULL_7_2_FEATURES.split(",")), "features")
    assert sorted(p.name for p in (cfs / "rnull").iterdir()) == ["features"]


def test_any_option_the_driver_offers_is_accepted_and_others_refused_naming_the_kernel(tmp_path, state):
    import platform

    release = platform.release()
    oot, mainline = tree(tmp_path / "a"), tree(tmp_path / "b", rnull="7.2")
    rich = {"submit_queues": 2, "completion_nsec": 5000, "irqmode": 2, "zoned": 1, "badblocks_once": 1}
    assert target(RnullTarget, oot, rich).kernel_problems() == []
    (line,) = target(RnullTarget, mainline, {"submit_queues": 2, "irqmode": 2}).kernel_problems()
    assert line == (
        f"target t: on kernel {release} rnull cannot honour submit_queues=2: it is fixed at 1; "
        "rnull cannot honour irqmode=2: it accepts only 0 or 1"
    )
    (line,) = target(RnullTarget, mainline, {"completion_nsec": 5000}).kernel_problems()
    assert line == (
        f"target t: on kernel {release} rnull cannot honour completion_nsec=5000 "
        "(settable here: blocksize, irqmode, rotational, size)"
    )
    # null_blk: every attribute file is an option; out-of-tree-only names under their C name.
    assert target(NullBlkTarget, oot, rich | {"cache_size_mib": 8}).kernel_problems() == []
    six_twelve = StandInTree(
        tmp_path / "c",
        {"nullb": ({k: v for k, v in NULL_BLK_7_2.items() if k != "rotational"}, "")},
    )
    (line,) = target(NullBlkTarget, six_twelve, {"rotational": 1}).kernel_problems()
    assert line.startswith(
        f"target t: null_blk on kernel {release} has no option rotational (it offers: badb"
    )


def test_a_recorded_kernel_is_judged_by_its_attributes_else_its_features():
    yaml = """name: rec
targets:
  common: {options: {submit_queues: 2, cache_size: 16, memory_backed: 1}}
  c: {driver: null_blk}
  rust: {driver: rnull}
fio: {ioengine: io_uring}
"""
    workload = loads(yaml, "w.yaml")
    recorded = {
        "null_blk": {
            "interface": "configfs",
            "features": NULL_BLK_7_2_FEATURES.split(","),
            "attributes": sorted(NULL_BLK_7_2),
        },
        "rnull": {
            "interface": "configfs",
            "features": RNULL_OOT_FEATURES.split(","),
            "attributes": sorted(RNULL_OOT),
        },
    }
    campaign.check_recorded_kernel(workload, recorded, "7.2.0-rnull-oot")
    # An entry recorded before the attribute files were: the (garbled) features decide.
    old = recorded | {"rnull": {"interface": "configfs", "features": RNULL_OOT_FEATURES.split(",")}}
    with pytest.raises(UsageError) as refused:
        campaign.check_recorded_kernel(workload, old, "7.2.0-rnull-oot", source="w.yaml")
    assert str(refused.value).startswith(
        "w.yaml: target rust: on kernel 7.2.0-rnull-oot rnull cannot honour submit_queues=2: it is fixed at 1"
    )
    fixed = recorded | {"rnull": {"interface": "fixed", "features": [], "attributes": []}}
    with pytest.raises(UsageError, match=r"target rust: on kernel 6\.12\.9 rnull is the fixed /dev/rnullb0"):
        campaign.check_recorded_kernel(
            loads(yaml.replace("memory_backed: 1}", "memory_backed: 0}, recreate: run"), "w.yaml"),
            fixed | {"rnull": fixed["rnull"]},
            "6.12.9",
        )


def test_one_common_option_reaches_each_driver_under_its_own_name(tmp_path, state):
    cfs = tree(tmp_path)
    for cls, sub, given, written in [
        (RnullTarget, "rnull", "cache_size", "cache_size_mib"),
        (RnullTarget, "rnull", "cache_size_mib", "cache_size_mib"),
        (NullBlkTarget, "nullb", "cache_size_mib", "cache_size"),
        (NullBlkTarget, "nullb", "cache_size", "cache_size"),
    ]:
        made = target(cls, cfs, {given: 16, "memory_backed": 1})
        offered, _ = configfs.offered(cfs, cfs.subsystem(sub), "probe")
        assert made.written_options(offered) == {written: 16, "memory_backed": 1}
        device = configfs.configure(cfs, cfs.subsystem(sub), f"dev-{given}", made.written_options(offered))
        assert (device / written).read_text() == "16"
        # The audit keys it by null_blk's name, so the two drivers' caches are compared.
        assert configfs.attribute_audit(configfs.read_attrs(device))["attr.cache_size"] == "16"
    # On mainline 7.2's rnull the cache is a built-in 0: asking for it is refused, 0 is accepted.
    assert option_problems({"cache_size": 0}, "configfs", set(RNULL_7_2) - {"power"}) == []
    assert option_problems({"cache_size_mib": 16}, "configfs", set(RNULL_7_2) - {"power"}) == [
        "rnull cannot honour cache_size=16: it is fixed at 0"
    ]


def test_the_schema_catches_typos_and_the_two_spellings_of_one_option(tmp_path):
    base = "name: s\ntargets:\n  r: {driver: rnull, options: %s}\nfio: {ioengine: io_uring}\n"
    loads(base % "{cache_size_mib: 16, badblocks: '+0-7', badblocks_partial_io: 1}", "w.yaml")
    with pytest.raises(UsageError) as typo:
        loads(base % "{cache_size_mb: 16}", "w.yaml")
    assert "driver rnull has no option 'cache_size_mb'; did you mean 'cache_size_mib'?" in str(typo.value)
    with pytest.raises(UsageError) as twice:
        loads(base % "{cache_size_mib: 16, cache_size: 16}", "w.yaml")
    assert "options cache_size and cache_size_mib are one option under two names; give one" in str(
        twice.value
    )


def audit_of(cls, cfs: configfs.Tree, sub: str, options: dict) -> dict[str, str]:
    """What describe() adds to the audit from the attribute files, after the same writes setup() makes."""
    made = target(cls, cfs, options)
    offered, _ = configfs.offered(cfs, cfs.subsystem(sub), "probe")
    device = configfs.configure(
        cfs,
        cfs.subsystem(sub),
        f"dev{len(list(cfs.subsystem(sub).iterdir()))}",
        made.written_options(offered),
    )
    return configfs.attribute_audit(configfs.read_attrs(device))


def test_the_audit_compares_every_attribute_both_drivers_have(tmp_path, state):
    cfs = tree(tmp_path)
    common = {"blocksize": 4096, "size": 4096, "poll_queues": 0}
    audits = {
        "c": audit_of(NullBlkTarget, cfs, "nullb", common),
        "rust": audit_of(RnullTarget, cfs, "rnull", common),
    }
    refused, allowed = blockdev.audit_differences(audits, [])
    # The defaults that differ between the drivers are found, not only queue settings.
    assert refused == [
        "attr.completion_nsec: c=10000, rust=0",
        "attr.home_node: c=4294967295, rust=-1",
        "attr.irqmode: c=1, rust=0",
        "attr.zone_append_max_sectors: c=2147483647, rust=4294967295",
    ]
    # Attributes only one driver has (null_blk's queue_mode, index) are not compared.
    assert "attr.queue_mode" in audits["c"] and "attr.queue_mode" not in audits["rust"]
    assert not any("queue_mode" in line or "index" in line for line in refused)
    matched = common | {"irqmode": 0, "completion_nsec": 10000}
    audits = {
        "c": audit_of(NullBlkTarget, cfs, "nullb", matched),
        "rust": audit_of(RnullTarget, cfs, "rnull", matched),
    }
    assert blockdev.audit_differences(audits, ["attr.home_node"]) == (
        ["attr.zone_append_max_sectors: c=2147483647, rust=4294967295"],
        ["attr.home_node: c=4294967295, rust=-1"],
    )


def test_mainline_rnull_is_compared_on_its_five_attributes(tmp_path, state):
    cfs = tree(tmp_path, rnull="7.2")
    common = {"blocksize": 4096, "size": 4096, "irqmode": 0}
    audits = {
        "c": audit_of(NullBlkTarget, cfs, "nullb", common),
        "rust": audit_of(RnullTarget, cfs, "rnull", common),
    }
    assert set(audits["rust"]) == {"attr.blocksize", "attr.size", "attr.rotational", "attr.irqmode"}
    assert blockdev.audit_differences(audits, []) == ([], [])


def test_the_report_lists_attribute_rows_and_marks_those_of_one_driver_as_information():
    from bench import report, store

    described = {
        "c": {
            "driver": "null_blk",
            "audit": {
                "scheduler": "none",
                "attr.irqmode": "1",
                "attr.completion_nsec": "10000",
                "attr.queue_mode": "2",
            },
        },
        "rust": {
            "driver": "rnull",
            "audit": {"scheduler": "none", "attr.irqmode": "0", "attr.completion_nsec": "0"},
        },
    }
    session = store.TargetSession("2026-12-07T00:00:00Z", 1, described, [])
    shown = report.CampaignReport(Path("c"), "c", {}, {}, {}, [session], ["attr.completion_nsec"], [])
    _, rows = report.audit_table(shown)
    states = {key: (values, state) for key, values, state in rows}
    assert states["scheduler"] == (["none", "none"], "same")
    assert states["attr.irqmode"] == (["1", "0"], "differs")
    assert states["attr.completion_nsec"] == (["10000", "0"], "allowed")
    assert states["attr.queue_mode"] == (["2", "-"], "info")
