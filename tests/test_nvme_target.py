"""driver: nvme — which namespace an identity names, what is recorded of it, and re-binding its
controller between drivers with the original binding restored.

Stand-in: there is no NVMe device on a test host, so these tests build a tree shaped like sysfs
(/sys/block/nvmeXnY, /sys/class/nvme/nvmeX, the PCI device and /sys/bus/pci/drivers) in the
test's tmp dir, and pass its root where the code takes `sysfs`. The tree's files are passive, so
the binding tests also pass a stand-in for the kernel's side of a sysfs write (unbind/bind move
the `driver` link as the kernel would). The real tree is exercised by the VM tier
(tests/test_vm_nvme.py) on QEMU-emulated controllers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import ledger
from bench.errors import RunError, UsageError
from bench.targets import nvme
from bench.targets.base import Context
from bench.targets.existing import NvmeNamespace
from bench.workload import QueueSettings


def _w(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _link(link: Path, to: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    to.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(to, link.parent))


def add_controller(
    sysfs: Path, ctrl: str, address: str, serial: str, model: str, driver: str | None = "nvme"
):
    pci = sysfs / "devices" / "pci0000:00" / address
    cdir = pci / "nvme" / ctrl
    for key, value in {
        "serial": serial,
        "model": model,
        "firmware_rev": "1.0",
        "address": address,
        "transport": "pcie",
    }.items():
        _w(cdir / key, value)
    _link(cdir / "device", pci)
    _link(sysfs / "class" / "nvme" / ctrl, cdir)
    _link(sysfs / "bus" / "pci" / "devices" / address, pci)
    _w(pci / "driver_override", "(null)")
    for name in ("nvme", "rnvme"):
        (sysfs / "bus" / "pci" / "drivers" / name).mkdir(parents=True, exist_ok=True)
        _w(sysfs / "bus" / "pci" / "drivers" / name / "bind", "")
    if driver:
        _link(pci / "driver", sysfs / "bus" / "pci" / "drivers" / driver)
    return cdir


def add_namespace(sysfs: Path, parent: Path, block: str, nsid: int, eui: str, queues: int = 2, size_mib=64):
    ndir = parent / block
    _w(ndir / "nsid", str(nsid))
    _w(ndir / "eui", eui)
    _w(ndir / "nguid", eui.replace(" ", "") * 2)
    _w(ndir / "wwid", f"eui.{eui.replace(' ', '')}")
    _w(ndir / "size", str(size_mib * 2048))
    _w(ndir / "ro", "0")
    _w(ndir / "queue" / "logical_block_size", "512")
    for q in range(queues):
        _w(ndir / "mq" / str(q) / "nr_tags", "1023")
    _link(ndir / "device", parent)
    _link(sysfs / "block" / block, ndir)


@pytest.fixture
def tree(tmp_path):
    """Two controllers (a second one of the same model), one with two namespaces."""
    sysfs = tmp_path / "sys"
    c0 = add_controller(sysfs, "nvme0", "0000:00:04.0", "blkcmp0001", "QEMU NVMe Ctrl")
    c1 = add_controller(sysfs, "nvme1", "0000:00:05.0", "blkcmp0002", "QEMU NVMe Ctrl")
    add_namespace(sysfs, c0, "nvme0n1", 1, "00 11 22 33 44 55 66 77", queues=2)
    add_namespace(sysfs, c0, "nvme0n2", 2, "00 11 22 33 44 55 66 78", queues=2)
    add_namespace(sysfs, c1, "nvme1n1", 1, "aa bb cc dd ee ff 00 11", queues=4)
    return sysfs


def test_identity_is_read_from_the_namespace_and_its_controller(tree):
    found = nvme.namespace_identity("nvme0n2", tree)
    assert found["serial"] == "blkcmp0001"
    assert found["model"] == "QEMU NVMe Ctrl"
    assert found["firmware"] == "1.0"
    assert found["address"] == "0000:00:04.0"
    assert found["transport"] == "pcie"
    assert found["driver"] == "nvme"
    assert found["nsid"] == "2"
    assert found["eui"] == "00 11 22 33 44 55 66 78"
    assert found["nr_hw_queues"] == "2"
    assert found["size_bytes"] == str(64 << 20)
    assert nvme.namespace_identity("nvme1n1", tree)["nr_hw_queues"] == "4"


def test_selection_by_serial_and_nsid_by_eui_and_the_ambiguous_model(tree):
    assert nvme.matching({"serial": "blkcmp0002"}, tree) == ["nvme1n1"]
    assert nvme.matching({"serial": "blkcmp0001", "nsid": "2"}, tree) == ["nvme0n2"]
    assert nvme.matching({"eui": "00 11 22 33 44 55 66 77"}, tree) == ["nvme0n1"]
    assert nvme.matching({"model": "QEMU NVMe Ctrl"}, tree) == ["nvme0n1", "nvme0n2", "nvme1n1"]
    assert nvme.matching({"serial": "nope"}, tree) == []


def test_names_that_moved_between_boots_are_followed_by_identity(tree, tmp_path):
    # nvme0 and nvme1 swap: the same controllers under each other's names
    swapped = tmp_path / "sys2"
    c0 = add_controller(swapped, "nvme0", "0000:00:05.0", "blkcmp0002", "QEMU NVMe Ctrl")
    c1 = add_controller(swapped, "nvme1", "0000:00:04.0", "blkcmp0001", "QEMU NVMe Ctrl")
    add_namespace(swapped, c0, "nvme0n1", 1, "aa bb cc dd ee ff 00 11")
    add_namespace(swapped, c1, "nvme1n1", 1, "00 11 22 33 44 55 66 77")
    assert nvme.matching({"serial": "blkcmp0001", "nsid": "1"}, tree) == ["nvme0n1"]
    assert nvme.matching({"serial": "blkcmp0001", "nsid": "1"}, swapped) == ["nvme1n1"]


def test_native_multipath_namespace_is_traced_through_the_subsystem(tmp_path):
    sysfs = tmp_path / "sys"
    ctrl = add_controller(sysfs, "nvme3", "0000:00:06.0", "blkcmp0009", "QEMU NVMe Ctrl")
    subsys = sysfs / "devices" / "virtual" / "nvme-subsystem" / "nvme-subsys3"
    _link(subsys / "nvme3", ctrl)
    add_namespace(sysfs, subsys, "nvme3n1", 1, "01 02 03 04 05 06 07 08")
    assert nvme.namespace_identity("nvme3n1", sysfs)["serial"] == "blkcmp0009"
    assert nvme.matching({"serial": "blkcmp0009"}, sysfs) == ["nvme3n1"]


def _target(tree, identity: dict, bind: str | None = None) -> NvmeNamespace:
    from bench.workload import TargetSpec

    target = NvmeNamespace("ns", {}, QueueSettings(), Context("t", "w.yaml"))
    target.sysfs = tree
    target.accept_spec(TargetSpec(driver="nvme", identity=identity, bind=bind), writes=False)
    return target


def test_the_target_resolves_by_identity_and_says_which_key_to_add(tree):
    assert _target(tree, {"serial": "blkcmp0001", "nsid": 2}).resolve() == "/dev/nvme0n2"
    with pytest.raises(
        UsageError, match=r"2 block devices match .*nvme0n1, /dev/nvme0n2.*add serial \(and nsid\)"
    ):
        _target(tree, {"serial": "blkcmp0001"}).resolve()
    with pytest.raises(UsageError, match="no block device here has identity serial=nope"):
        _target(tree, {"serial": "nope"}).resolve()


def test_lba_format_in_use_from_id_ns_json():
    # nvme-cli's id-ns JSON, shortened: format 1 (4 KiB, no metadata) in use, metadata bit set
    id_ns = {
        "nsze": 2097152,
        "flbas": 0x11,
        "nlbaf": 1,
        "lbafs": [{"ms": 0, "ds": 9, "rp": 0}, {"ms": 8, "ds": 12, "rp": 1}],
    }
    assert nvme.lba_format(id_ns) == {
        "index": 1,
        "data_bytes": 4096,
        "metadata_bytes": 8,
        "relative_performance": 1,
        "metadata_at_end_of_lba": True,
    }
    # more than 16 formats: bits 6:5 of FLBAS are the upper bits of the index (0x21 -> 17)
    many = {
        "flbas": 0x21,
        "nlbaf": 19,
        "lbafs": [{"ms": 0, "ds": 9, "rp": 0}] * 17 + [{"ms": 0, "ds": 13, "rp": 2}],
    }
    assert nvme.lba_format(many)["index"] == 17
    assert nvme.lba_format(many)["data_bytes"] == 8192
    assert nvme.format_supported({"oacs": 0x17}) and not nvme.format_supported({"oacs": 0x5})


class Kernel:
    """Stand-in for the kernel's side of sysfs writes to a PCI device (see the module docstring)."""

    def __init__(self, sysfs: Path):
        self.sysfs = sysfs
        self.writes: list[tuple[str, str]] = []

    def __call__(self, path: Path, text: str) -> None:
        self.writes.append((str(path.relative_to(self.sysfs)), text.strip()))
        if path.name == "driver_override":
            path.write_text(text if text.strip() else "(null)\n")
        elif path.name == "unbind":
            (self.sysfs / "bus" / "pci" / "devices" / text / "driver").unlink()
        elif path.name == "bind":
            pci = Path(os.path.realpath(self.sysfs / "bus" / "pci" / "devices" / text))
            _link(pci / "driver", path.parent)


def test_binder_rebinds_per_target_and_restores_the_original_binding(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("BLKCMP_STATE_DIR", str(tmp_path / "state"))
    kernel = Kernel(tree)
    address = "0000:00:04.0"
    before = nvme.binding(address, tree)
    assert before == {"address": address, "driver": "nvme", "driver_override": None}
    binder = nvme.Binder(address, tree, write=kernel)
    assert [e["kind"] for e in ledger.resources().values()] == ["nvme-binding"]
    assert binder.bind_for("c", "nvme")  # the C driver re-bound to itself: the mechanism
    assert not binder.bind_for("c", "nvme")  # same target again: left bound
    assert binder.bind_for("rust", "rnvme")
    assert nvme.pci_driver(address, tree) == "rnvme"
    assert nvme.binding(address, tree)["driver_override"] == "rnvme"
    assert binder.bind_for("c", "nvme")
    assert binder.rebinds == 3
    binder.close()
    assert nvme.binding(address, tree) == before
    assert ledger.resources() == {}
    # the unbind always precedes the bind, and the override is set before either
    names = [Path(p).name for p, _ in kernel.writes]
    assert names[:3] == ["driver_override", "unbind", "bind"]


def test_cleanup_restores_a_binding_left_by_a_killed_campaign(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("BLKCMP_STATE_DIR", str(tmp_path / "state"))
    kernel = Kernel(tree)
    address = "0000:00:04.0"
    before = nvme.binding(address, tree)
    binder = nvme.Binder(address, tree, write=kernel)
    binder.bind_for("rust", "rnvme")
    entry = next(iter(ledger.resources().values()))
    # what `blkcmp cleanup` calls for the entry (its cleaner), with the stand-in kernel
    nvme.restore(entry["data"]["saved"], Path(entry["data"]["sysfs"]), write=kernel)
    assert nvme.binding(address, tree) == before
    assert ledger.CLEANERS["nvme-binding"] is not None


def test_binding_to_a_driver_the_kernel_lacks_is_an_error_naming_it(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("BLKCMP_STATE_DIR", str(tmp_path / "state"))
    binder = nvme.Binder("0000:00:04.0", tree, write=Kernel(tree))
    with pytest.raises(RunError, match="no PCI driver nvme_rs in this kernel"):
        binder.bind_for("rust", "nvme_rs")
    binder.close()
    assert nvme.pci_driver("0000:00:04.0", tree) == "nvme"
