"""Where a test kernel's source comes from, and what of it the cache key covers.

A test kernel is built from Debian's `linux-source-X.Y` package (the default), a git checkout, a
plain directory or a tarball, optionally with patches applied and a config fragment added on top
of blkcmp's. `Source` describes such a request as plain data: the identity of the tree (the
commit, and a hash of uncommitted changes; a content hash of a directory; the tarball's sha256),
the patches and the fragment, each hashed, so that two builds share a cache entry exactly when
they would build the same kernel.

Build trees are kept (`KeptTree`) per *base* (everything but the patches), so that a second build
of a lightly patched tree starts from the first one's objects: its recorded patches are reverted,
the new ones applied, and make rebuilds only what they touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import UsageError

# What a built tree holds besides source; left out of a directory's content hash and its copy.
_BUILD_OUTPUT_SUFFIXES = (".o", ".a", ".ko", ".cmd", ".d", ".mod", ".order", ".symvers", ".rmeta", ".rlib")
_BUILD_OUTPUT_NAMES = frozenset(
    {".config", ".config.old", "vmlinux", "bzImage", "System.map", ".tmp_versions"}
)
_TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tar.zst")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,39}$")
# The build trees kept for cheap rebuilds (2.6 GiB each for 7.2 with tinyconfig).
MAX_KEPT_TREES = 2


@dataclass(frozen=True)
class Patch:
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name

    def to_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path), "sha256": self.sha256}


@dataclass(frozen=True)
class Source:
    """A build request's source side: the tree, the patches on it, the user's config fragment."""

    kind: str  # "debian", "git", "dir" or "tarball"
    location: str  # linux-source-X.Y, or the path given
    version: str | None  # the Debian version asked ("7.2"); for other trees read after unpacking
    identity: dict = field(default_factory=dict)  # commit / dirty hash / content hash / sha256
    patches: tuple[Patch, ...] = ()
    fragment: str = ""  # the user's config fragment, appended after blkcmp's
    fragment_path: str | None = None
    label: str | None = None

    @property
    def plain(self) -> bool:
        """Debian's source as it is: what `blkcmp kernel build 7.2` makes, named by its version."""
        return self.kind == "debian" and not self.patches and not self.fragment

    def base_extra(self) -> str:
        """What the cache key adds for this source before the patches ("" for plain Debian, so
        those keys stay what they always were): the kept build tree's key."""
        if self.kind == "debian" and not self.fragment:
            return ""
        return json.dumps(
            {"kind": self.kind, "identity": self.identity, "fragment": self.fragment}, sort_keys=True
        )

    def key_extra(self) -> str:
        """What the cache key adds for the whole request: the base, the patches and the label
        (which is part of the release string, `uname -r`, of every non-plain build)."""
        if self.plain:
            return ""
        return json.dumps(
            {
                "base": self.base_extra(),
                "patches": [p.sha256 for p in self.patches],
                "label": self.label,
            },
            sort_keys=True,
        )

    def describe(self) -> str:
        if self.kind == "debian":
            text = self.location
        elif self.kind == "git":
            text = f"git {self.location} @ {self.identity['commit'][:12]}"
            if self.identity.get("dirty"):
                text += f" + uncommitted changes ({self.identity['dirty'][:8]})"
        elif self.kind == "dir":
            text = f"directory {self.location} (content {self.identity['content'][:8]})"
        else:
            text = f"tarball {self.location} (sha256 {self.identity['sha256'][:8]})"
        if self.patches:
            text += " + " + ", ".join(f"{p.name} ({p.sha256[:8]})" for p in self.patches)
        if self.fragment_path:
            text += f" + config {Path(self.fragment_path).name}"
        return text

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "location": self.location,
            "identity": self.identity,
            "patches": [p.to_dict() for p in self.patches],
            "config_fragment": self.fragment_path,
            "config_fragment_text": self.fragment or None,
            "label": self.label,
            "description": self.describe(),
        }


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git(path: Path, *args: str, binary: bool = False) -> bytes:
    proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(
            f"--source {path}: git {' '.join(args)} failed: {detail[-1] if detail else proc.returncode}"
        )
    return proc.stdout


def git_files(path: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files of a checkout that exist (build output is
    ignored by the kernel's .gitignore, so it is never copied nor hashed)."""
    out = _git(path, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--deduplicate")
    names = [n.decode(errors="surrogateescape") for n in out.split(b"\0") if n]
    return [n for n in names if os.path.lexists(path / n)]


def _git_identity(path: Path) -> dict:
    commit = _git(path, "rev-parse", "HEAD").decode().strip()
    status = _git(path, "status", "--porcelain", "--untracked-files=normal")
    dirty = None
    if status.strip():
        h = hashlib.sha256(_git(path, "diff", "HEAD", "--binary"))
        untracked = _git(path, "ls-files", "-z", "--others", "--exclude-standard").split(b"\0")
        for name in sorted(n for n in untracked if n):
            f = path / name.decode(errors="surrogateescape")
            h.update(name + b"\0")
            if f.is_file():
                h.update(_sha256_file(f).encode())
        dirty = h.hexdigest()
    return {"commit": commit, "dirty": dirty}


def dir_files(path: Path) -> list[str]:
    """A plain directory's source files, build output and VCS folders left out, sorted."""
    names = []
    for parent, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in (".git", ".tmp_versions"))
        rel = os.path.relpath(parent, path)
        for f in files:
            if f in _BUILD_OUTPUT_NAMES or f.endswith(_BUILD_OUTPUT_SUFFIXES):
                continue
            names.append(f if rel == "." else f"{rel}/{f}")
    return sorted(names)


def _dir_identity(path: Path) -> dict:
    h = hashlib.sha256()
    for name in dir_files(path):
        f = path / name
        h.update(name.encode(errors="surrogateescape") + b"\0")
        h.update(os.readlink(f).encode() if f.is_symlink() else _sha256_file(f).encode())
    return {"content": h.hexdigest()}


def check_label(label: str, where: str = "--label") -> str:
    if not _LABEL_RE.match(label):
        raise UsageError(
            f"{where} {label!r}: use 1-40 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit (it becomes part of `uname -r`)"
        )
    return label


def from_request(
    version: str | None,
    source: str | None,
    patches: list[str] | tuple[str, ...] = (),
    config_fragment: str | None = None,
    label: str | None = None,
) -> Source:
    """The Source of a `kernel build` request; UsageError naming the argument for bad input."""
    patch_list = []
    for p in patches:
        path = Path(p).expanduser()
        if not path.is_file():
            raise UsageError(f"--patch {p}: no such file")
        patch_list.append(Patch(path.resolve(), _sha256_file(path)))
    fragment = ""
    if config_fragment is not None:
        fpath = Path(config_fragment).expanduser()
        try:
            fragment = fpath.read_text()
        except OSError as e:
            raise UsageError(f"--config-fragment {config_fragment}: {e.strerror}") from None
        for n, line in enumerate(fragment.splitlines(), 1):
            s = line.strip()
            if s and not s.startswith("#") and not re.match(r"^CONFIG_[A-Za-z0-9_]+=", s):
                raise UsageError(
                    f"--config-fragment {config_fragment}, line {n}: {s[:60]!r} is not "
                    "CONFIG_NAME=value or a comment ('# CONFIG_NAME is not set' turns one off)"
                )
        config_fragment = str(fpath.resolve())
    if label is not None:
        check_label(label)
        if (source is not None or patch_list or fragment) and re.match(r"^\d+\.\d+(-nooverflow)?$", label):
            raise UsageError(
                f"--label {label}: a bare version names Debian's unpatched source; "
                "pick a label of your own (e.g. 7.2-mine)"
            )
    if source is None:
        if version is None:
            raise UsageError("kernel build: give a Debian version (6.12, 7.2) or --source DIR|TARBALL")
        src = Source("debian", f"linux-source-{version}", version, {}, tuple(patch_list), fragment)
        if not src.plain and label is None:
            key = hashlib.sha256(src.key_extra().encode()).hexdigest()[:6]
            label = f"{version}-patched-{key}"
        return Source(
            "debian",
            src.location,
            version,
            {},
            tuple(patch_list),
            fragment,
            config_fragment,
            label or version,
        )
    if version is not None:
        raise UsageError(
            f"kernel build: give either a Debian version ({version}) or --source, not both "
            "(Debian's source plus patches: the version and --patch)"
        )
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageError(f"--source {source}: no such file or directory")
    path = path.resolve()
    if path.is_dir():
        if (path / ".git").exists():
            kind, identity = "git", _git_identity(path)
            default = f"{path.name}-{identity['commit'][:8]}" + ("-dirty" if identity["dirty"] else "")
        else:
            kind, identity = "dir", _dir_identity(path)
            default = f"{path.name}-{identity['content'][:8]}"
        if not (path / "Makefile").is_file():
            raise UsageError(
                f"--source {source}: no Makefile at the top; give the kernel tree's top directory"
            )
    elif path.name.endswith(_TARBALL_SUFFIXES):
        kind, identity = "tarball", {"sha256": _sha256_file(path)}
        default = re.sub(r"\.(tar(\.\w+)?|tgz|txz)$", "", path.name)
    else:
        raise UsageError(f"--source {source}: not a directory nor a tarball ({', '.join(_TARBALL_SUFFIXES)})")
    if label is None:
        label = check_label(re.sub(r"[^A-Za-z0-9._+-]", "-", default)[:40].lstrip(".-_+") or "tree")
    return Source(kind, str(path), None, identity, tuple(patch_list), fragment, config_fragment, label)


def place(source: Source, dest: Path) -> Path:
    """Put a git/dir/tarball source under dest (an empty directory); the kernel tree's top."""
    dest.mkdir(parents=True, exist_ok=True)
    src = Path(source.location)
    if source.kind in ("git", "dir"):
        names = git_files(src) if source.kind == "git" else dir_files(src)
        listing = dest.parent / f".{dest.name}.files"
        listing.write_bytes(b"\0".join(n.encode(errors="surrogateescape") for n in names) + b"\0")
        tree = dest / src.name
        tree.mkdir()
        try:
            pack = subprocess.Popen(
                ["tar", "-C", str(src), "--null", "-T", str(listing), "-cf", "-"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            unpack = subprocess.run(
                ["tar", "-C", str(tree), "-xf", "-"], stdin=pack.stdout, capture_output=True, check=False
            )
            assert pack.stdout is not None
            pack.stdout.close()
            pack_err = pack.stderr.read().decode(errors="replace") if pack.stderr else ""
            if pack.wait() != 0 or unpack.returncode != 0:
                err = (pack_err or unpack.stderr.decode(errors="replace")).strip().splitlines()
                raise UsageError(
                    f"--source {src}: copying the tree failed: {err[-1] if err else 'tar failed'}"
                )
        finally:
            listing.unlink(missing_ok=True)
        return tree
    proc = subprocess.run(["tar", "-C", str(dest), "-xf", str(src)], capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(f"--source {src}: cannot unpack: {err[-1] if err else 'tar failed'}")
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def tree_version(tree: Path) -> tuple[int, int, int]:
    """VERSION.PATCHLEVEL.SUBLEVEL from a kernel tree's top Makefile."""
    try:
        head = (tree / "Makefile").read_text(errors="replace")[:4000]
    except OSError:
        raise UsageError(f"{tree}: no top-level Makefile; not a kernel tree") from None
    parts = []
    for name in ("VERSION", "PATCHLEVEL", "SUBLEVEL"):
        m = re.search(rf"^{name}\s*=\s*(\d*)\s*$", head, re.M)
        if not m:
            raise UsageError(f"{tree}/Makefile has no {name} line; not a kernel tree")
        parts.append(int(m.group(1) or 0))
    return parts[0], parts[1], parts[2]


def has_rnull(tree: Path) -> bool:
    """Whether the tree's Kconfig offers rnull (CONFIG_BLK_DEV_RUST_NULL, mainline since 6.11;
    in drivers/block/Kconfig until 6.17, drivers/block/rnull/Kconfig since)."""
    block = tree / "drivers" / "block"
    for kconfig in [block / "Kconfig", *block.glob("*/Kconfig")]:
        try:
            if re.search(r"^config BLK_DEV_RUST_NULL\b", kconfig.read_text(errors="replace"), re.M):
                return True
        except OSError:
            continue
    return False


# ----------------------------------------------------------------------------------------------
# Kept build trees


@dataclass(frozen=True)
class KeptTree:
    """A kernel tree kept, and always built, at <trees>/<base key>/tree (the kernel's host tools
    record absolute paths: a tree that moved would be rebuilt whole)."""

    root: Path

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def applied(self) -> list[Path]:
        """The patches applied to the kept tree, in order (copies kept beside it)."""
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return []
        return [self.root / "patches" / n for n in state.get("patches", [])]

    def usable(self) -> bool:
        """Built, with the patches it holds on record; a tree whose build was cut off is not."""
        return self.tree.is_dir() and self.state_path.is_file() and all(p.is_file() for p in self.applied())

    def unmark(self) -> None:
        """In use by a build: not usable until `mark` says what it holds."""
        self.state_path.unlink(missing_ok=True)

    def mark(self, patches: tuple[Patch, ...], source: Source) -> None:
        """The tree is built (or back at its base) with these patches applied."""
        folder = self.root / "patches"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        names = []
        for i, p in enumerate(patches):
            name = f"{i:02d}-{p.name}"
            shutil.copy2(p.path, folder / name)
            names.append(name)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"patches": names, "source": source.to_dict()}, indent=1) + "\n")
        tmp.rename(self.state_path)


def kept_tree(trees_dir: Path, base_key: str) -> KeptTree:
    return KeptTree(trees_dir / base_key)


def least_recently_used(trees_dir: Path, keep: KeptTree) -> list[Path]:
    """The kept trees to drop so that at most MAX_KEPT_TREES stay (`keep` always stays)."""
    others = sorted(
        (d for d in trees_dir.iterdir() if d.is_dir() and d != keep.root),
        key=lambda d: (d / "state.json").stat().st_mtime if (d / "state.json").exists() else 0,
    )
    return others[: max(0, len(others) - (MAX_KEPT_TREES - 1))]
