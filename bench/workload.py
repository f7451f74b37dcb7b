"""Workload files: the schema, loading from YAML, and one-line errors that name file:line and field.

A workload says what to run: the targets (devices under test), the fio options every job shares,
a matrix of fio options to sweep, and how often and in what order to repeat. `load()` turns a
YAML file into a validated `Workload` or raises `UsageError` whose message has one line per
problem: `FILE:LINE: FIELD.PATH: what was expected, what was found[; did you mean ...]`.
`json_schema()` is the published JSON Schema (workloads/schema.json is kept equal to it by a test).
"""

from __future__ import annotations

import difflib
import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from bench.errors import UsageError
from bench.targets.options import BLOCK_DRIVERS, DRIVER_OPTIONS

Scalar = Union[bool, int, float, str]
FioValue = Union[bool, int, float, str, None]

# fio options that blkcmp sets itself, with the reason given to a user who tries to set them.
RESERVED_FIO_OPTIONS: dict[str, str] = {
    "filename": "blkcmp points each job at its target's device",
    "filename_format": "blkcmp points each job at its target's device",
    "directory": "blkcmp points each job at its target's device (use a `file` target's `directory` option)",
    "output": "blkcmp keeps fio's output beside each run",
    "output-format": "blkcmp always runs fio with --output-format=json+",
    "output_format": "blkcmp always runs fio with --output-format=json+",
    "runtime": "set the top-level `runtime:` instead",
    "ramp_time": "set the top-level `ramp_time:` instead",
    "time_based": "blkcmp runs every job time-based for `runtime` seconds",
    "name": "blkcmp names each job after its target",
    "client": "client/server runs are set up by blkcmp, not by a job option",
    "server": "client/server runs are set up by blkcmp, not by a job option",
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueSettings(_Strict):
    """sysfs queue attributes applied to every block device a target creates (read back after)."""

    scheduler: str | None = Field(None, description="I/O scheduler, e.g. none, mq-deadline, kyber")
    nomerges: Literal[0, 1, 2] | None = Field(None, description="0 merge, 1 simple only, 2 none")
    rq_affinity: Literal[0, 1, 2] | None = Field(None, description="completion CPU: 0, 1 group, 2 same")
    iostats: Literal[0, 1] | None = Field(None, description="account I/O statistics")
    nr_requests: int | None = Field(None, ge=1, description="requests per hardware queue")
    wbt_lat_usec: int | None = Field(None, ge=0, description="writeback throttling target (0 off)")

    def merged_over(self, base: "QueueSettings") -> "QueueSettings":
        values = base.model_dump(exclude_none=True) | self.model_dump(exclude_none=True)
        return QueueSettings(**values)


class CommonSpec(_Strict):
    """Options applied identically to every target: fairness by construction."""

    options: dict[str, Scalar] = Field(default_factory=dict,
                                       description="driver options applied to every target")
    queue: QueueSettings = Field(default_factory=lambda: QueueSettings(scheduler="none"),
                                 description="queue settings for every block device (scheduler none by default)")


class TargetSpec(_Strict):
    """One device under test: a driver and its options."""

    driver: Literal["null_blk", "rnull", "file", "loop", "fio-null"]
    options: dict[str, Scalar] = Field(default_factory=dict, description="driver options")
    queue: QueueSettings = Field(default_factory=QueueSettings,
                                 description="queue settings for this target only (over common.queue)")


class Targets(BaseModel):
    """Named targets plus the reserved `common` block."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, TargetSpec] = Field(init=False)

    common: CommonSpec = Field(default_factory=CommonSpec)

    @model_validator(mode="after")
    def _names(self) -> "Targets":
        if not self.__pydantic_extra__:
            raise ValueError("expected at least one target besides `common`, found none")
        return self

    def named(self) -> dict[str, TargetSpec]:
        return dict(self.__pydantic_extra__ or {})


class AdaptiveRepetitions(_Strict):
    """Add interleaved rounds for every point whose verdict is not settled at `margin` and whose
    ratio CI half-width is above target_ci, up to max."""

    min: int = Field(5, ge=2)
    max: int = Field(40, ge=2)
    target_ci: float = Field(0.01, gt=0, lt=1, description="relative half-width of the ratio CI")
    margin: float = Field(0.02, gt=0, lt=1, description="equivalence margin a point's verdict is settled at")

    @model_validator(mode="after")
    def _order(self) -> "AdaptiveRepetitions":
        if self.max < self.min:
            raise ValueError(f"expected max >= min, found min {self.min} and max {self.max}")
        return self


class Matrix(BaseModel):
    """fio options to sweep (cartesian product), minus `exclude` combinations."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Annotated[list[Scalar], Field(min_length=1)]] = Field(init=False)

    exclude: list[dict[str, Scalar]] = Field(default_factory=list,
                                             description="combinations to leave out")

    def axes(self) -> dict[str, list[Scalar]]:
        return dict(self.__pydantic_extra__ or {})


class Workload(_Strict):
    """A benchmark campaign: targets × matrix points × repetitions."""

    name: str | None = Field(None, description="campaign name (default: the file's stem)")
    description: str = ""
    targets: Targets
    baseline: str | None = Field(None, description="target the others are compared to (default: the first)")
    fio: dict[str, FioValue] = Field(default_factory=dict,
                                     description="fio options for every job, spelled as fio spells them")
    matrix: Matrix = Field(default_factory=Matrix)
    # 12 rounds: enough, at CV 1 % per run, for the verdict to reach a decision (README, Statistics)
    repetitions: int | AdaptiveRepetitions = Field(12, description="rounds, or {min, max, target_ci}")
    runtime: float = Field(10, gt=0, description="seconds of measured I/O per run")
    ramp_time: float = Field(2, ge=0, description="seconds of warm-up per run, not measured")
    order: Literal["interleaved", "sequential"] = "interleaved"
    seed: int | None = Field(None, description="seed of the run order (default: chosen and recorded)")
    allow_differences: list[str] = Field(default_factory=list,
                                         description="audited settings allowed to differ between targets")

    @field_validator("repetitions")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"expected at least 1, found {value}")
        return value

    # -- derived values ---------------------------------------------------------------------
    def campaign_name(self, path: Path | None = None) -> str:
        return self.name or (path.stem if path else "campaign")

    def target_names(self) -> list[str]:
        return list(self.targets.named())

    def baseline_name(self) -> str:
        return self.baseline or self.target_names()[0]

    def min_rounds(self) -> int:
        reps = self.repetitions
        return reps if isinstance(reps, int) else reps.min

    def max_rounds(self) -> int:
        reps = self.repetitions
        return reps if isinstance(reps, int) else reps.max

    def effective_options(self, target: str) -> dict[str, Scalar]:
        return self.targets.common.options | self.targets.named()[target].options

    def effective_queue(self, target: str) -> QueueSettings:
        return self.targets.named()[target].queue.merged_over(self.targets.common.queue)

    def points(self) -> list[dict[str, Scalar]]:
        """Every matrix point (an ordered dict of fio options), in matrix order."""
        axes = self.matrix.axes()
        if not axes:
            return [{}]
        keys = list(axes)
        points = []
        for values in itertools.product(*(axes[k] for k in keys)):
            point = dict(zip(keys, values))
            # A combination naming a non-axis matches nothing (load() reports it as an error).
            if any(all(k in point and point[k] == v for k, v in combo.items())
                   for combo in self.matrix.exclude):
                continue
            points.append(point)
        return points


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _option_problems(driver: str, options: dict[str, Any], path: tuple):
    known = DRIVER_OPTIONS[driver]
    for key, value in options.items():
        where = path + (key,)
        if key not in known:
            yield where, (f"driver {driver} has no option {key!r}"
                          + (_did_you_mean(key, known) or f" (it has: {', '.join(sorted(known))})"))
            continue
        kind = known[key].kind
        if kind is bool and value not in (0, 1, True, False):
            yield where, f"expected 0/1 or true/false, found {value!r}"
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            yield where, f"expected an integer, found {value!r}"
        elif kind is str and not isinstance(value, str):
            yield where, f"expected a string, found {value!r}"


def semantic_problems(workload: Workload):
    """Checks across fields, each yielding (path, message) so errors point at the exact line."""
    named = workload.targets.named()
    for name, spec in named.items():
        base = ("targets", name)
        if not _NAME_RE.match(name):
            yield base, (f"expected a target name of letters, digits, '_', '-', '.' "
                         f"(at most 32, starting with a letter or digit), found {name!r}")
        yield from _option_problems(spec.driver, spec.options, base + ("options",))
        if spec.driver not in BLOCK_DRIVERS and spec.queue.model_dump(exclude_none=True):
            yield base + ("queue",), f"driver {spec.driver} has no block queue; remove `queue`"
        for where, text in _option_problems(spec.driver, workload.targets.common.options,
                                            ("targets", "common", "options")):
            yield where, f"{text} (applies to target {name})"
    if workload.baseline is not None and workload.baseline not in named:
        yield ("baseline",), (f"expected one of the targets {sorted(named)}, found {workload.baseline!r}"
                              + _did_you_mean(workload.baseline, named))
    for key in workload.fio:
        if key in RESERVED_FIO_OPTIONS:
            yield ("fio", key), f"option {key!r} is set by blkcmp: {RESERVED_FIO_OPTIONS[key]}"
    axes = workload.matrix.axes()
    for key in axes:
        if key in RESERVED_FIO_OPTIONS:
            yield ("matrix", key), f"option {key!r} is set by blkcmp: {RESERVED_FIO_OPTIONS[key]}"
    for i, combo in enumerate(workload.matrix.exclude):
        for key, value in combo.items():
            if key not in axes:
                yield (("matrix", "exclude", i, key),
                       f"{key!r} is not a matrix axis" + (_did_you_mean(key, axes) or f" (axes: {', '.join(axes)})"))
            elif value not in axes[key]:
                yield ("matrix", "exclude", i, key), f"expected one of {axes[key]}, found {value!r}"
    if axes and not workload.points():
        yield ("matrix", "exclude"), "expected at least one point left, found every point excluded"
    reps = workload.repetitions
    if isinstance(reps, AdaptiveRepetitions) and workload.order != "interleaved":
        yield ("order",), f"adaptive repetitions need order: interleaved, found {workload.order!r}"


# ------------------------------------------------------------------------------------------
# Loading with line numbers


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent override is a classic workload bug)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each path (tuple of keys / indexes) to the 1-based line where it is written."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = _key_of(key_node)
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out


def _key_of(node: yaml.Node) -> Any:
    """A mapping key as the loader builds it: None for `null:`, True for `true:`, 1 for `1:`."""
    if isinstance(node, yaml.ScalarNode):
        try:
            return yaml.constructor.SafeConstructor().construct_object(node)
        except yaml.YAMLError:
            pass
    return node.value


def _yaml_key(key: Any) -> str:
    """A non-string key as it is spelled in YAML."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _format_path(path: tuple) -> str:
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{_yaml_key(part)}" if text else _yaml_key(part)
    return text or "(top level)"


def _real_path(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union/tag elements from an error location, keeping the parts in the data."""
    path: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and (part in node or _odd_key(node, part) is not _NO_KEY):
            key = part if part in node else _odd_key(node, part)
            path.append(key)
            node = node[key]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


_NO_KEY = object()


def _odd_key(node: dict, part: Any) -> Any:
    """The non-string key (None, True, 1) that pydantic names by its str() in error locations."""
    return next((k for k in node if not isinstance(k, str) and str(k) == part), _NO_KEY)


def _fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """Field names allowed at `path` (for "did you mean")."""
    current: Any = model
    for part in path:
        fields = getattr(current, "model_fields", {})
        if part in fields:
            annotation = fields[part].annotation
            current = next((a for a in getattr(annotation, "__args__", (annotation,))
                            if isinstance(a, type) and issubclass(a, BaseModel)), annotation)
        elif current is Targets:
            current = TargetSpec
        else:
            return []
    return list(getattr(current, "model_fields", {}))


def _describe_found(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _is_shape_error(err: dict) -> bool:
    """The input has the wrong type for this (union member) schema, e.g. a mapping for an int."""
    return err["type"].endswith(("_type", "_parsing"))


def _relevant(errors: list[dict], data: Any) -> list[dict]:
    """Drop the complaints of union members the input was not meant for.

    `repetitions: {min: 5, max: 3}` fails both as an int (wrong shape) and as the mapping (max <
    min); only the second says what is wrong. A shape error is dropped when another error at or
    under the same place is not a shape error.
    """
    paths = [_real_path(tuple(e["loc"]), data) for e in errors]
    keep = []
    for err, path in zip(errors, paths):
        if _is_shape_error(err) and any(
                other is not err and not _is_shape_error(other) and p[:len(path)] == path
                for other, p in zip(errors, paths)):
            continue
        keep.append(err)
    return keep


_SCALAR_MEMBERS = {"bool", "int", "float", "str"}


def _messages(error: ValidationError, data: Any, lines: dict[tuple, int], file: str) -> list[str]:
    out: list[str] = []
    seen: set[tuple] = set()
    for err in _relevant(error.errors(), data):
        loc = tuple(err["loc"])
        path = _real_path(loc, data)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = loc[-1]
            path = path if path and path[-1] == key else path + (key,)
            hint = _did_you_mean(key, _fields_at(Workload, path[:-1]))
            text = f"unknown key{hint or ''}"
        elif kind == "missing":
            path = path
            text = f"missing required field {loc[-1]!r}"
            if not path or path[-1] != loc[-1]:
                text = f"missing required field {loc[-1]!r}"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            text = msg if "found" in msg else f"{msg[0].lower() + msg[1:]}, found {_describe_found(err.get('input'))}"
            if (_is_shape_error(err) and loc and loc[-1] in _SCALAR_MEMBERS
                    and isinstance(err.get("input"), (list, dict))):  # fio options, matrix values
                text = f"expected a single value (string, number or boolean), found {_describe_found(err['input'])}"
            if kind == "invalid_key" or loc[-1] == "[key]":  # `null:`, `true:`, `1:` as a key
                found = err.get("input")
                path = (path[:-1] if path and path[-1] == found else path) + (found,)
                spelled = _yaml_key(found)
                what = "null" if found is None else "a boolean" if isinstance(found, bool) else "a number"
                text = f"expected a string key, found {what} (quote it: '{spelled}')"
        key = (path, text)
        if key in seen:
            continue
        seen.add(key)
        line = _line_of(lines, path)
        # Union members each report a failure at the same place: keep the first, it is enough.
        if any(o.startswith(f"{file}:{line}: {_format_path(path)}:") for o in out) and kind != "extra_forbidden":
            continue
        out.append(f"{file}:{line}: {_format_path(path)}: {text}")
    return out


def load(path: str | Path) -> Workload:
    """Load and validate a workload file; raise UsageError with one line per problem."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"{name}: no such workload file") from None
    except OSError as exc:
        raise UsageError(f"{name}: cannot read: {exc.strerror}") from None
    return loads(text, name)


def loads(text: str, name: str = "<workload>") -> Workload:
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise UsageError(f"{name}:{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{name}: invalid YAML: {exc}") from None
    if data is None:
        raise UsageError(f"{name}:1: (top level): expected a mapping with `targets`, found an empty file")
    if not isinstance(data, dict):
        raise UsageError(f"{name}:1: (top level): expected a mapping with `targets`, found {_describe_found(data)}")
    lines = _line_map(node) if node is not None else {}
    try:
        workload = Workload.model_validate(data)
    except ValidationError as exc:
        raise UsageError("\n".join(_messages(exc, data, lines, name))) from None
    problems = [f"{name}:{_line_of(lines, path)}: {_format_path(path)}: {text}"
                for path, text in semantic_problems(workload)]
    if problems:
        raise UsageError("\n".join(problems))
    return workload


def _line_of(lines: dict[tuple, int], path: tuple) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def json_schema() -> dict:
    schema = Workload.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://blkcmp.invalid/workload.schema.json"
    schema["title"] = "blkcmp workload"
    return schema


def dump(workload: Workload) -> str:
    """The resolved workload as YAML (what a campaign directory keeps)."""
    data = workload.model_dump(mode="json", exclude_none=False)
    return yaml.safe_dump(data, sort_keys=False)
