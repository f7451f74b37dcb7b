"""bench.kernel_source: what a `kernel build --source/--patch/--config-fragment` request is, what
its cache key covers, how a tree is copied, and the kept build trees.

Real git repositories, directories and tarballs in tmp; the real builds (Debian's 7.2 with a
patch, reusing the kept tree) are in the `vm` tier (tests/test_kernels.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import run_cli

from bench import kernel_source, kernels
from bench.errors import UsageError

MAKEFILE = "VERSION = 7\nPATCHLEVEL = 2\nSUBLEVEL = 13\nEXTRAVERSION =\nNAME = Test\n"
KCONFIG = "config BLK_DEV_NULL_BLK\n\ttristate\nconfig BLK_DEV_RUST_NULL\n\ttristate\n"


def _tree(path: Path, kconfig: str = KCONFIG) -> Path:
    (path / "drivers" / "block").mkdir(parents=True)
    (path / "Makefile").write_text(MAKEFILE)
    (path / "drivers" / "block" / "Kconfig").write_text(kconfig)
    (path / "drivers" / "block" / "null.c").write_text("int x;\n")
    return path


def _git(path: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path) -> Path:
    path = _tree(tmp_path / "linux")
    (path / ".gitignore").write_text("*.o\n.config\n")
    _git(path, "init", "-q")
    _git(path, "add", ".")
    _git(path, "commit", "-qm", "base")
    return path


def test_plain_debian_request_keeps_the_old_cache_key():
    src = kernel_source.from_request("7.2", None)
    assert src.plain and src.kind == "debian" and src.label == "7.2"
    # "" extra: the key a plain build had before sources were recorded, so caches stay valid.
    assert src.key_extra() == "" and src.base_extra() == ""
    tool = {"rustc": "1.9"}
    assert kernels.build_key("sid", tool, "v", True, src.key_extra()) == kernels.build_key(
        "sid", tool, "v", True
    )


def test_patches_change_the_key_but_not_the_base(tmp_path):
    slow = tmp_path / "slow.patch"
    slow.write_text("--- a/x\n+++ b/x\n")
    other = tmp_path / "other.patch"
    other.write_text("--- a/y\n+++ b/y\n")
    plain = kernel_source.from_request("7.2", None)
    one = kernel_source.from_request("7.2", None, [str(slow)], label="slow")
    two = kernel_source.from_request("7.2", None, [str(slow), str(other)], label="slow")
    swapped = kernel_source.from_request("7.2", None, [str(other), str(slow)], label="slow")
    assert not one.plain and one.label == "slow"
    keys = {s.key_extra() for s in (plain, one, two, swapped)}
    assert len(keys) == 4  # the patches, and their order, are part of the key
    # ... but not of the base: all four share one kept build tree.
    assert {s.base_extra() for s in (plain, one, two, swapped)} == {""}
    assert one.patches[0].sha256 == kernel_source._sha256_file(slow)
    # The label is part of the key (it is in `uname -r`).
    assert kernel_source.from_request("7.2", None, [str(slow)], label="slow2").key_extra() != one.key_extra()
    # Without a label a patched build gets one from its content, never the bare version.
    unnamed = kernel_source.from_request("7.2", None, [str(slow)])
    assert unnamed.label.startswith("7.2-patched-") and unnamed.label != "7.2"


def test_config_fragment_is_part_of_the_base(tmp_path):
    frag = tmp_path / "f.config"
    frag.write_text("# mine\nCONFIG_HZ_1000=y\n# CONFIG_PREEMPT_VOLUNTARY is not set\n")
    src = kernel_source.from_request("7.2", None, config_fragment=str(frag), label="hz1000")
    assert src.fragment.startswith("# mine") and src.base_extra() != ""
    assert "CONFIG_HZ_1000=y" in src.base_extra()
    bad = tmp_path / "bad.config"
    bad.write_text("CONFIG_A=y\nHZ=1000\n")
    with pytest.raises(UsageError, match=r"--config-fragment .*bad.config, line 2: 'HZ=1000'"):
        kernel_source.from_request("7.2", None, config_fragment=str(bad), label="x")


def test_git_identity_follows_commit_and_uncommitted_changes(repo):
    clean = kernel_source.from_request(None, str(repo))
    assert clean.kind == "git" and clean.identity["dirty"] is None
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert clean.identity["commit"] == head.stdout.strip()
    assert clean.label == f"linux-{head.stdout.strip()[:8]}"
    # Build output (ignored by .gitignore) changes nothing.
    (repo / "drivers" / "block" / "null.o").write_bytes(b"\x7fELF")
    assert kernel_source.from_request(None, str(repo)).key_extra() == clean.key_extra()
    # An edit does, and so does a new untracked file; reverting the edit brings the key back.
    (repo / "drivers" / "block" / "null.c").write_text("int y;\n")
    edited = kernel_source.from_request(None, str(repo))
    assert edited.identity["dirty"] and edited.label.endswith("-dirty")
    (repo / "drivers" / "block" / "null.c").write_text("int x;\n")
    (repo / "new.c").write_text("int z;\n")
    untracked = kernel_source.from_request(None, str(repo))
    assert untracked.identity["dirty"] and untracked.identity["dirty"] != edited.identity["dirty"]
    (repo / "new.c").unlink()
    assert kernel_source.from_request(None, str(repo)).key_extra() == clean.key_extra()
    # A commit moves the key.
    (repo / "drivers" / "block" / "null.c").write_text("int w;\n")
    _git(repo, "commit", "-qam", "next")
    assert kernel_source.from_request(None, str(repo)).identity["commit"] != clean.identity["commit"]


def test_directory_identity_is_its_content_without_build_output(tmp_path):
    tree = _tree(tmp_path / "src")
    first = kernel_source.from_request(None, str(tree))
    assert first.kind == "dir" and len(first.identity["content"]) == 64
    (tree / "drivers" / "block" / "null.o").write_bytes(b"obj")
    (tree / ".config").write_text("CONFIG_X=y\n")
    assert kernel_source.from_request(None, str(tree)).identity == first.identity
    (tree / "drivers" / "block" / "null.c").write_text("int changed;\n")
    assert kernel_source.from_request(None, str(tree)).identity != first.identity


def test_tarball_identity_and_unpacking(tmp_path):
    tree = _tree(tmp_path / "linux-7.2.13", kconfig="source drivers/block/rnull/Kconfig\n")
    (tree / "drivers" / "block" / "rnull").mkdir()
    (tree / "drivers" / "block" / "rnull" / "Kconfig").write_text(KCONFIG)  # 6.18+: its own Kconfig
    ball = tmp_path / "linux-7.2.13.tar.xz"
    with tarfile.open(ball, "w:xz") as t:
        t.add(tree, arcname="linux-7.2.13")
    src = kernel_source.from_request(None, str(ball))
    assert src.kind == "tarball" and src.label == "linux-7.2.13"
    assert src.identity["sha256"] == kernel_source._sha256_file(ball)
    top = kernel_source.place(src, tmp_path / "work")
    assert top.name == "linux-7.2.13" and kernel_source.tree_version(top) == (7, 2, 13)
    assert kernel_source.has_rnull(top)


def test_place_copies_a_checkout_without_its_build_output(repo, tmp_path):
    (repo / "drivers" / "block" / "null.o").write_bytes(b"obj")
    (repo / "untracked.c").write_text("int u;\n")
    (repo / "drivers" / "block" / "Kconfig").unlink()  # deleted but still tracked: skipped
    src = kernel_source.from_request(None, str(repo))
    top = kernel_source.place(src, tmp_path / "work")
    copied = sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_file())
    assert copied == [".gitignore", "Makefile", "drivers/block/null.c", "untracked.c"]


def test_a_tree_without_rnull_and_old_versions(tmp_path):
    old = _tree(tmp_path / "old", kconfig="config BLK_DEV_NULL_BLK\n\ttristate\n")
    assert not kernel_source.has_rnull(old)
    with pytest.raises(UsageError, match="no VERSION line"):
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "Makefile").write_text("all:\n")
        kernel_source.tree_version(tmp_path / "bad")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("7.2", "/tmp"), "either a Debian version"),
        ((None, None), "give a Debian version"),
        ((None, "/nonexistent-tree"), "no such file or directory"),
        ((None, "/etc/hostname"), "not a directory nor a tarball"),
    ],
)
def test_bad_requests_are_one_line(args, message):
    with pytest.raises(UsageError, match=message) as err:
        kernel_source.from_request(*args)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("label", ["7.2", "6.12-nooverflow", "-x", "a b", "x" * 41, "é"])
def test_labels_are_checked(tmp_path, label):
    patch = tmp_path / "p.patch"
    patch.write_text("")
    with pytest.raises(UsageError, match="--label"):
        kernel_source.from_request("7.2", None, [str(patch)], label=label)


def test_kept_trees_record_patches_and_stay_bounded(tmp_path):
    trees = tmp_path / "trees"
    trees.mkdir()
    patch = tmp_path / "slow.patch"
    patch.write_text("p\n")
    src = kernel_source.from_request("7.2", None, [str(patch)], label="slow")
    kept = []
    for i in range(kernel_source.MAX_KEPT_TREES + 1):
        tree = kernel_source.kept_tree(trees, f"key{i}")
        tree.tree.mkdir(parents=True)
        assert not tree.usable()  # unpacked, not built: never reused
        tree.mark(src.patches, src)
        assert tree.usable()
        for old in kernel_source.least_recently_used(trees, keep=tree):
            shutil.rmtree(old)
        kept.append(tree)
    assert [p.name for p in kept[-1].applied()] == ["00-slow.patch"]
    assert kept[-1].applied()[0].read_text() == "p\n"
    state = json.loads(kept[-1].state_path.read_text())
    assert state["source"]["patches"][0]["sha256"] == src.patches[0].sha256
    # The oldest is dropped: at most MAX_KEPT_TREES stay.
    assert sorted(d.name for d in trees.iterdir()) == [
        f"key{i}" for i in range(1, kernel_source.MAX_KEPT_TREES + 1)
    ]
    # In use by a build: not usable until marked again (a build cut off leaves it unusable).
    kept[-1].unmark()
    assert not kept[-1].usable()
    kept[-1].mark((), src)
    assert kept[-1].usable() and kept[-1].applied() == []


def _fake_entry(cache: Path, name: str, release: str, version: str) -> Path:
    """A cache entry with just what list/resolve read (a bzImage header and kernel.json)."""
    import struct

    entry = cache / "kernels" / name
    entry.mkdir(parents=True)
    data = bytearray(0x4000)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x1000 - 0x200)
    text = f"{release} (root@blkcmp) #1".encode() + b"\0"
    data[0x1000 : 0x1000 + len(text)] = text
    (entry / "bzImage").write_bytes(bytes(data))
    config = {"CONFIG_RUST_OVERFLOW_CHECKS": "y", "CONFIG_BLK_DEV_RUST_NULL": "y"}
    meta = {"name": name, "release": release, "version": version, "config": config}
    (entry / "kernel.json").write_text(json.dumps(meta))
    return entry


def test_resolve_finds_labels_and_versions_only_name_plain_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("BLKCMP_CACHE", str(tmp_path / "cache"))
    plain = _fake_entry(tmp_path / "cache", "7.2.13-sid-aaaa", "7.2.13", "7.2")
    patched = _fake_entry(tmp_path / "cache", "7.2.13-slow-sid-bbbb", "7.2.13-slow", "7.2")
    meta = json.loads((patched / "kernel.json").read_text())
    patch = tmp_path / "slow.patch"
    patch.write_text("x\n")
    meta |= {
        "label": "slow",
        "built_at": "2026-12-07T23:00:00+00:00",
        "source": kernel_source.from_request("7.2", None, [str(patch)], label="slow").to_dict(),
    }
    (patched / "kernel.json").write_text(json.dumps(meta))
    assert kernels.resolve("7.2").path == plain  # never the patched one
    info = kernels.resolve("slow")
    assert info.path == patched and not info.plain and info.label == "slow"
    assert kernels.resolve("7.2.13-slow").path == patched
    with pytest.raises(UsageError, match=r"built labels: slow"):
        kernels.resolve("fast")


def test_kernel_list_shows_label_source_and_patches(tmp_path, env):
    cache = tmp_path / "cache"
    env = env | {"BLKCMP_CACHE": str(cache)}
    entry = _fake_entry(cache, "7.2.13-slow-sid-bbbb", "7.2.13-slow", "7.2")
    meta = json.loads((entry / "kernel.json").read_text())
    patch = tmp_path / "null_blk-slow.patch"
    patch.write_text("x\n")
    meta |= {
        "label": "slow",
        "source": kernel_source.from_request("7.2", None, [str(patch)], label="slow").to_dict(),
    }
    (entry / "kernel.json").write_text(json.dumps(meta))
    out = run_cli("kernel", "list", env=env).stdout
    assert "label slow, source linux-source-7.2 + null_blk-slow.patch (" in out
    assert "patches null_blk-slow.patch (" in out


def test_kernel_build_bad_input_exits_2(env, tmp_path):
    proc = run_cli("kernel", "build", "7.2", "--patch", str(tmp_path / "missing.patch"), env=env)
    assert proc.returncode == 2 and proc.stderr.strip().endswith("missing.patch: no such file")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_tree_without_rnull_is_refused_before_any_work(tmp_path, env):
    old = _tree(tmp_path / "linux-6.6", kconfig="config BLK_DEV_NULL_BLK\n\ttristate\n")
    (old / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 6\nSUBLEVEL = 1\n")
    proc = run_cli("kernel", "build", "--source", str(old), env=env | {"BLKCMP_CACHE": str(tmp_path / "c")})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        f"blkcmp: error: --source {old}: Linux 6.6.1 without rnull "
        "(no BLK_DEV_RUST_NULL in drivers/block/**/Kconfig; mainline has it since 6.11)"
    )
    assert not (tmp_path / "c").exists()  # no chroot, no cache: refused before any work
