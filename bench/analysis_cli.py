"""Arguments of the analysis commands (compare, plot, report), kept beside the core CLI."""

from __future__ import annotations


def add_commands(sub) -> None:
    """Registered by bench.cli; filled in as the analysis commands land."""
