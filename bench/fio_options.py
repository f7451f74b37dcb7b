"""Which fio options a workload may set: fio's own option table and blkcmp's allow-list.

fio's table (option names, aliases, types, valid values, engines and each engine's options) is
read from the fio binary that will run the jobs (`fio --cmdhelp`, `fio --enghelp`) and cached per
fio binary and version under the blkcmp cache directory, so a key is checked against the options
this fio really has. blkcmp's policy sorts fio's options into four kinds:

- owned:   blkcmp sets them itself (filename, runtime, …); a workload never does.
- never:   they name devices or files blkcmp cannot check (opendir, read_iolog, …); refused always.
- guarded: they name paths or run programs (exec_prerun, write_*_log, cgroup, …); refused unless
           the workload lists them under `allow_fio_options:`, and log paths are then rewritten
           to a bare file name, so fio writes them into the run's own directory.
- plain:   known to shape only the I/O on blkcmp's own target (PLAIN below): allowed.

Anything else this fio has (an option newer than blkcmp's lists) is refused: an allow-list, not a
deny-list. The same holds for I/O engines: SAFE_ENGINES do I/O on the target's file only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import RunError

FORMAT = 2  # of the cached table; bump when OptionTable changes shape

OWNED: dict[str, str] = {
    "filename": "blkcmp points each job at its target's device",
    "filename_format": "blkcmp points each job at its target's device",
    "directory": "blkcmp points each job at its target's device (use a `file` target's `directory` option)",
    "unique_filename": "blkcmp points each job at its target's device",
    "output": "blkcmp keeps fio's output beside each run",
    "output-format": "blkcmp always runs fio with --output-format=json+",
    "output_format": "blkcmp always runs fio with --output-format=json+",
    "runtime": "set the top-level `runtime:` instead",
    "ramp_time": "set the top-level `ramp_time:` instead",
    "time_based": "blkcmp runs every job time-based for `runtime` seconds",
    "name": "blkcmp names each job after its target",
    "client": "client/server runs are set up by blkcmp, not by a job option",
    "server": "client/server runs are set up by blkcmp, not by a job option",
    "ioscheduler": "blkcmp sets and audits the scheduler: use the target's `queue: {scheduler: …}`",
}

# Set by blkcmp when the workload asks for `timeseries:` (the logs must be where and as it reads them).
TIMESERIES_OWNED = (
    "write_bw_log",
    "write_iops_log",
    "write_lat_log",
    "write_hist_log",
    "log_avg_msec",
    "log_hist_msec",
    "per_job_logs",
    "log_compression",
    "log_store_compressed",
    "log_unix_epoch",
    "log_alternate_epoch",
    "log_max_value",
)

NEVER: dict[str, str] = {
    "opendir": "it makes fio write to every file under a directory",
    "read_iolog": "a replayed iolog writes to the devices and files it names, which blkcmp cannot check",
    "replay_redirect": "it sends replayed I/O to a device the workload names",
    "merge_blktrace_file": "it writes a merged trace to a path the workload names",
    "profile": "a built-in profile brings its own options (act names devices), which blkcmp cannot check",
}

_LOG_REASON = (
    "it writes files where the workload says (once allowed, blkcmp has fio write them "
    "into the run's own directory instead)"
)

GUARDED: dict[str, str] = {
    "exec_prerun": "it runs a program as root before the job",
    "exec_postrun": "it runs a program as root after the job",
    "write_iolog": _LOG_REASON,
    "write_bw_log": _LOG_REASON,
    "write_iops_log": _LOG_REASON,
    "write_lat_log": _LOG_REASON,
    "write_hist_log": _LOG_REASON,
    "cgroup": "it creates cgroups and moves fio's jobs into them",
    "cgroup_weight": "it creates cgroups and moves fio's jobs into them",
    "cgroup_nodelete": "it leaves the cgroups it created behind",
    "uid": "it runs the jobs as another user",
    "gid": "it runs the jobs as another group",
    "unlink": "it deletes the target's file after the job",
    "unlink_each_loop": "it deletes the target's file after each loop",
    "allow_mounted_write": "it turns off fio's own refusal to write to a mounted device",
}

# Guarded options whose value is a path: rewritten to its last component (a file in the run dir).
LOG_PATH_OPTIONS = ("write_iolog", "write_bw_log", "write_iops_log", "write_lat_log", "write_hist_log")

# Options whose value may name a file in some forms (checked per value).
PATTERN_OPTIONS = ("buffer_pattern", "verify_pattern")  # 'quoted' = the contents of a file
MEMORY_OPTIONS = ("mem",)  # mmap:FILE creates, truncates, deletes FILE

# Engines that do I/O on the job's file (the target) and nothing else.
SAFE_ENGINES = frozenset(
    {
        "sync",
        "psync",
        "vsync",
        "pvsync",
        "pvsync2",
        "libaio",
        "io_uring",
        "posixaio",
        "mmap",
        "null",
        "splice",
        "cpuio",
    }
)

# fio 3.33's options that only shape the I/O on the job's own file, as fio spells them (aliases
# resolve to these through fio's table). Engine options of SAFE_ENGINES are plain too.
PLAIN = frozenset(
    [
        "description",
        "wait_for",
        "lockfile",
        "rw",
        "bs",
        "ba",
        "bsrange",
        "bssplit",
        "bs_unaligned",
        "randrepeat",
        "randseed",
        "norandommap",
        "ignore_error",
        "rw_sequencer",
        "ioengine",
        "iodepth",
        "iodepth_batch",
        "iodepth_batch_complete_min",
        "iodepth_batch_complete_max",
        "iodepth_low",
        "serialize_overlap",
        "io_submit_mode",
        "size",
        "io_size",
        "fill_device",
        "filesize",
        "file_append",
        "offset",
        "offset_increment",
        "offset_align",
        "number_ios",
        "random_generator",
        "random_distribution",
        "percentage_random",
        "allrandrepeat",
        "nrfiles",
        "file_service_type",
        "openfiles",
        "fallocate",
        "fadvise_hint",
        "fsync",
        "fdatasync",
        "write_barrier",
        "sync_file_range",
        "direct",
        "atomic",
        "buffered",
        "overwrite",
        "loops",
        "numjobs",
        "startdelay",
        "verify_only",
        "clocksource",
        "mem",
        "verify",
        "do_verify",
        "verify_interval",
        "verify_offset",
        "verify_pattern",
        "verify_fatal",
        "verify_dump",
        "verify_async",
        "verify_backlog",
        "verify_backlog_batch",
        "experimental_verify",
        "verify_state_load",
        "verify_state_save",
        "trim_percentage",
        "trim_verify_zero",
        "trim_backlog",
        "trim_backlog_batch",
        "read_iolog_chunked",
        "replay_no_stall",
        "replay_scale",
        "replay_align",
        "replay_time_scale",
        "replay_skip",
        "merge_blktrace_scalars",
        "merge_blktrace_iters",
        "zonemode",
        "zonesize",
        "zonecapacity",
        "zonerange",
        "zoneskip",
        "read_beyond_wp",
        "max_open_zones",
        "job_max_open_zones",
        "ignore_zone_limits",
        "zone_reset_threshold",
        "zone_reset_frequency",
        "lockmem",
        "rwmixread",
        "rwmixwrite",
        "nice",
        "prio",
        "prioclass",
        "thinktime",
        "thinktime_spin",
        "thinktime_blocks",
        "thinktime_blocks_type",
        "thinktime_iotime",
        "rate",
        "rate_min",
        "rate_process",
        "rate_cycle",
        "rate_ignore_thinktime",
        "rate_iops",
        "rate_iops_min",
        "max_latency",
        "latency_target",
        "latency_window",
        "latency_percentile",
        "latency_run",
        "invalidate",
        "sync",
        "write_hint",
        "create_serialize",
        "create_fsync",
        "create_on_open",
        "create_only",
        "allow_file_create",
        "pre_read",
        "cpumask",
        "cpus_allowed",
        "cpus_allowed_policy",
        "numa_cpu_nodes",
        "numa_mem_policy",
        "end_fsync",
        "fsync_on_close",
        "exitall",
        "exit_what",
        "exitall_on_error",
        "stonewall",
        "new_group",
        "thread",
        "per_job_logs",
        "bwavgtime",
        "iopsavgtime",
        "log_entries",
        "log_avg_msec",
        "log_hist_msec",
        "log_hist_coarseness",
        "log_max_value",
        "log_offset",
        "log_prio",
        "log_compression",
        "log_compression_cpus",
        "log_store_compressed",
        "log_unix_epoch",
        "log_alternate_epoch",
        "log_alternate_epoch_clock_id",
        "block_error_percentiles",
        "group_reporting",
        "stats",
        "zero_buffers",
        "refill_buffers",
        "scramble_buffers",
        "buffer_pattern",
        "buffer_compress_percentage",
        "buffer_compress_chunk",
        "dedupe_percentage",
        "dedupe_mode",
        "dedupe_working_set_percentage",
        "dedupe_global",
        "clat_percentiles",
        "lat_percentiles",
        "slat_percentiles",
        "percentile_list",
        "significant_figures",
        "disk_util",
        "gtod_reduce",
        "disable_lat",
        "disable_clat",
        "disable_slat",
        "disable_bw_measurement",
        "gtod_cpu",
        "unified_rw_reporting",
        "continue_on_error",
        "error_dump",
        "kb_base",
        "unit_base",
        "hugepage-size",
        "flow_id",
        "flow",
        "flow_sleep",
        "steadystate",
        "steadystate_duration",
        "steadystate_ramp_time",
    ]
)

_CACHE: dict[str, OptionTable] = {}


def fold(key: str) -> str:
    """The key as blkcmp compares it: no surrounding blanks, lower case, '-' as '_'.

    fio itself strips the blanks (so `"filename "` is fio's filename); folding case and '-' too
    means no spelling of an option blkcmp owns slips past its check, whatever a fio version accepts.
    """
    return key.strip(" \t").lower().replace("-", "_")


@dataclass(frozen=True)
class OptionInfo:
    name: str
    alias: str | None
    type: str  # fio's own words: "boolean value", "string (opt=bla)", …
    values: tuple[str, ...] = ()  # the valid values fio lists, if any

    @property
    def is_flag(self) -> bool:
        """Written bare (`group_reporting`) as well as with 0/1."""
        return self.type.startswith("empty or boolean")

    @property
    def takes_number(self) -> bool:
        return self.type.startswith(("boolean", "empty or boolean", "integer", "list of floating"))


@dataclass
class OptionTable:
    """One fio binary's options, aliases, engines and engine options.

    `fio --cmdhelp=all` lists the option names; an option's alias, type and valid values, and an
    engine's options, are asked for (one fio call each) only when a workload uses them, then kept
    in the cache with the rest: a workload of five options costs a handful of calls, not 250.
    """

    version: str
    names: list[str]
    engines: list[str]
    infos: dict[str, OptionInfo] = field(default_factory=dict)
    aliases: dict[str, str | None] = field(default_factory=dict)  # folded key -> option (None: none)
    engine_options: dict[str, list[str]] = field(default_factory=dict)
    fio: str | None = None  # the binary to ask; None: answer from what is known only
    dirty: bool = False  # learnt something since loaded (save() writes it)

    def __post_init__(self) -> None:
        self._folded = {fold(n): n for n in self.names}

    def _ask(self, args: list[str]) -> str:
        if self.fio is None:
            raise RunError("fio's option table is incomplete and no fio binary was given to ask")
        self.dirty = True
        return _fio(args, self.fio)

    def info(self, name: str) -> OptionInfo:
        if name not in self.infos:
            self.infos[name] = parse_cmdhelp(name, self._ask([f"--cmdhelp={name}"]))
        return self.infos[name]

    def canonical(self, key: str) -> str | None:
        """fio's name for a key (an alias resolves to the option it stands for), or None."""
        folded = fold(key)
        if folded in self._folded:
            return self._folded[folded]
        if not is_option_name(folded):
            return None
        if folded not in self.aliases:
            # fio matches an alias only when asked for it by name (and case-sensitively)
            text = self._ask([f"--cmdhelp={folded}"])
            first = parse_cmdhelp_all(text.splitlines()[0]) if text.strip() else []
            found = None
            if first and first[0] in self.names:
                info = parse_cmdhelp(first[0], text)
                self.infos.setdefault(info.name, info)
                found = info.name if info.alias and fold(info.alias) == folded else None
            self.aliases[folded] = found
        return self.aliases[folded]

    def known_engines(self) -> list[str]:
        """Engines this fio lists, plus `external` (external:LIB.so) when it can load one."""
        ioengine = self.info("ioengine") if "ioengine" in self.names else None
        return self.engines + (["external"] if ioengine and "external" in ioengine.values else [])

    def spellings(self) -> list[str]:
        return sorted(set(self.names) | {a for a, n in self.aliases.items() if n})

    def options_of(self, engine: str) -> list[str]:
        if engine not in self.engines:
            return []
        if engine not in self.engine_options:
            self.engine_options[engine] = parse_engine_options(self._ask([f"--enghelp={engine}"]))
        return self.engine_options[engine]

    def engine_option(self, key: str, engines) -> str | None:
        for engine in sorted(engines):
            for name in self.options_of(engine):
                if fold(name) == fold(key):
                    return name
        return None

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": self.version,
            "names": self.names,
            "engines": self.engines,
            "infos": [asdict(o) for o in self.infos.values()],
            "aliases": self.aliases,
            "engine_options": self.engine_options,
        }

    @classmethod
    def from_dict(cls, data: dict, fio: str | None = None) -> OptionTable:
        infos = {
            o["name"]: OptionInfo(o["name"], o["alias"], o["type"], tuple(o["values"])) for o in data["infos"]
        }
        return cls(
            data["version"],
            list(data["names"]),
            list(data["engines"]),
            infos,
            dict(data["aliases"]),
            dict(data["engine_options"]),
            fio,
        )

    def save(self) -> None:
        """Keep what was learnt in the cache (a read-only cache only costs asking fio again)."""
        if self.dirty and self.fio is not None and (key := _binary_key(self.fio)) is not None:
            _save(_cache_path(key), self)
            self.dirty = False


# ------------------------------------------------------------------------------------------
# Reading fio's table


def _fio(args: list[str], fio: str) -> str:
    from bench.fio import ANSWER_TIMEOUT_S

    try:
        out = subprocess.run([fio, *args], capture_output=True, text=True, timeout=ANSWER_TIMEOUT_S)
    except FileNotFoundError:
        raise RunError(f"fio not found ({fio}); run scripts/install.sh or set BLKCMP_FIO") from None
    except subprocess.TimeoutExpired:
        raise RunError(f"fio {' '.join(args)} did not answer within {ANSWER_TIMEOUT_S} s") from None
    return out.stdout + out.stderr


_HELP_LINE = re.compile(r"^\s*([^:]*?)\s*:\s?(.*)$")


def parse_cmdhelp_all(text: str) -> list[str]:
    """Option names from `fio --cmdhelp=all` (children are indented; all are options)."""
    names = []
    for line in text.splitlines():
        m = _HELP_LINE.match(line)
        if m and m.group(1) and " " not in m.group(1):
            names.append(m.group(1))
    return names


def parse_cmdhelp(name: str, text: str) -> OptionInfo:
    """One option from `fio --cmdhelp=NAME`: its alias, type and valid values."""
    alias, kind, values, in_values = None, "", [], False
    for line in text.splitlines():
        m = _HELP_LINE.match(line)
        if not m:
            continue
        label, rest = m.group(1), m.group(2).strip()
        if label == "alias":
            alias = rest or None
        elif label == "type":
            kind = rest
        elif label == "valid values" or (label == "" and in_values):
            in_values = True
            if rest:
                values.append(rest.split()[0])
            continue
        in_values = False
    return OptionInfo(name, alias, kind, tuple(values))


def parse_enghelp(text: str) -> list[str]:
    """Engine names from `fio --enghelp` (one per tab-indented line)."""
    return [line.strip() for line in text.splitlines() if line.startswith(("\t", " ")) and line.strip()]


def parse_engine_options(text: str) -> list[str]:
    if "has no options" in text:
        return []
    return [
        m.group(1)
        for line in text.splitlines()
        if (m := _HELP_LINE.match(line)) and m.group(1) and " " not in m.group(1)
    ]


def read_table(fio: str) -> OptionTable:
    """The option names and engines of this fio (two calls; the rest is asked for when used)."""
    version = _fio(["--version"], fio).strip() or "unknown"
    names = parse_cmdhelp_all(_fio(["--cmdhelp=all"], fio))
    if not names:
        raise RunError(f"{fio} --cmdhelp=all listed no options: cannot check the workload's fio options")
    return OptionTable(version, names, parse_enghelp(_fio(["--enghelp"], fio)), fio=fio, dirty=True)


def _binary_key(fio: str) -> str | None:
    path = shutil.which(fio)
    if path is None:
        return None
    st = os.stat(path)
    return hashlib.sha1(f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _cache_path(key: str) -> Path:
    from bench.kernels import cache_dir

    return cache_dir() / "fio" / f"options-{key}.json"


def table(fio: str | None = None) -> OptionTable:
    """This fio's table: from memory, else the on-disk cache, else fio itself (then cached)."""
    from bench.fio import FIO

    fio = fio or FIO
    key = _binary_key(fio)
    if key is None:
        raise RunError(f"fio not found ({fio}); run scripts/install.sh or set BLKCMP_FIO")
    if key in _CACHE:
        return _CACHE[key]
    loaded = None
    try:
        data = json.loads(_cache_path(key).read_text())
        if isinstance(data, dict) and data.get("format") == FORMAT:
            loaded = OptionTable.from_dict(data, fio)
    except (OSError, ValueError, KeyError, TypeError):
        loaded = None  # absent or damaged: asked again below
    if loaded is None:
        loaded = read_table(fio)
        loaded.save()
    _CACHE[key] = loaded
    return loaded


def _save(path: Path, loaded: OptionTable) -> None:
    from bench.errors import StorageError
    from bench.store import atomic_write_json

    try:
        atomic_write_json(path, loaded.to_dict())
    except (OSError, StorageError):
        # A read-only cache (a VM guest's root, for one) only costs asking fio again next
        # time; the answer is the same.
        pass


# ------------------------------------------------------------------------------------------
# Values


_NAME_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")


def bad_characters(text: str) -> str | None:
    """A description of the first control or invisible character in text, or None."""
    for ch in text:
        if (
            ch in "\n\r\t"
            or unicodedata.category(ch).startswith("C")
            or unicodedata.category(ch) in ("Zl", "Zp")
        ):
            return f"a control character ({ch!r})"
    return None


def is_option_name(key: str) -> bool:
    return bool(_NAME_CHARS.match(key))


def log_file_name(value: str) -> str:
    """A log path reduced to a plain file name in the run's directory (the redirect)."""
    base = value.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", base).lstrip(".")
    return base or "log"


# Every fio `rw` value that only reads (fio also takes `rw=randread:8`, so the suffix is cut).
READ_ONLY_RW = frozenset({"read", "randread"})


def job_writes(options: dict[str, Any]) -> bool:
    """Does a fio job with these options write (or trim) its file? fio's default rw is read.
    Decides whether an existing block device must pass the write-safety policy."""
    rw = next((v for k, v in options.items() if fold(k) in ("rw", "readwrite")), "read")
    return str(rw).split(":", 1)[0].strip().lower() not in READ_ONLY_RW
