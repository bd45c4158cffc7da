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


def print_named(items, header: str, as_json: bool) -> None:
    """List ``(name, spec-with-.description)`` pairs as a table or JSON (datasets, mask kinds)."""
    if as_json:
        print_json([{"name": n, "description": d.description} for n, d in items])
        return
    print_table([(n, d.description) for n, d in items], [header, "description"])
