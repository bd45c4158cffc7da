"""Printing helpers: plain tables and ``--json``."""

from __future__ import annotations

import json
from typing import Any, Sequence

import click


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], indent: str = "") -> None:
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        click.echo(indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            click.echo(indent + "  ".join("-" * w for w in widths))
