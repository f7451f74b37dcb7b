"""Kernel releases and kernel configurations as text: the one version sort key and the one
`.config` parser (used by the kernel cache, the environment record and the figures)."""

from __future__ import annotations

import re


def release_key(release: str) -> tuple:
    """Sort kernel releases as versions: 6.9 before 6.12, 7.2-rc1 before 7.2."""
    key = []
    for part in re.split(r"[.\-+~_]", release):
        if part.isdigit():
            key.append((1, int(part), ""))
        elif part.startswith("rc") and part[2:].isdigit():
            key.append((0, int(part[2:]), ""))  # a release candidate sorts before the release
        else:
            key.append((1, -1, part))
    return tuple(key)


_SET = re.compile(r"^(CONFIG_\w+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_\w+) is not set$")


def parse_config(text: str, symbols: tuple[str, ...] | None = None) -> dict[str, str]:
    """Symbol -> value from a .config text ("n" for `# CONFIG_X is not set`; quotes removed);
    only `symbols` when given."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _SET.match(line)
        if m:
            name, value = m.group(1), m.group(2)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
        else:
            m = _UNSET.match(line)
            if not m:
                continue
            name, value = m.group(1), "n"
        if symbols is None or name in symbols:
            out[name] = value
    return out
