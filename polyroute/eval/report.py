"""Render an evaluation report (the dict of :func:`polyroute.eval.evaluate.evaluate`).

``render`` prints rich tables to a console; ``write_json`` saves the report;
``markdown`` gives the same summary as Markdown for benchmark notes.  The cells
come from :mod:`polyroute.eval.tables`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from polyroute.errors import ConfigError
from polyroute.eval.tables import (
    Table,
    describe,
    fmt,
    group_table,
    intervals_note,
    summary_rows,
    task_table,
)

__all__ = ["markdown", "plan_table", "render", "summary_rows", "write_json", "write_markdown"]


def _rich(table: Table) -> Any:
    from rich.table import Table as RichTable

    title, header, rows = table
    out = RichTable(title=title)
    for i, col in enumerate(header):
        out.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*row)
    return out


def _main_table(report: dict[str, Any]) -> Table:
    proto = report["protocol"]
    header, rows = summary_rows(report)
    title = f"routers ({describe(proto)}, {proto['rows']} rows, {intervals_note(proto)})"
    return title, header, rows


def plan_table(report: dict[str, Any]) -> Table | None:
    """Each plan's operating points (``--plans``): target, quality, cost and cost fraction."""
    rows = []
    for r in report["routers"]:
        for point in r.get("plan", {}).get("points", []):
            target = point.get("target_cost_fraction")
            rows.append(
                [
                    r["name"],
                    "—" if target is None else f"{target:g}",
                    fmt(point["quality"], 4),
                    f"{point['cost']:.3e}",
                    fmt(point["cost_fraction"], 3),
                ]
            )
    if not rows:
        return None
    title = f"plans: operating points (cost fraction of {report['best_single']}'s cost)"
    return title, ["plan", "target F", "quality", "cost USD", "cost fraction"], rows


def render(report: dict[str, Any], per_task: bool = False) -> None:
    """Print the single models, the main table, the per-group table and optionally per task."""
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 180)
    models = [
        [
            m["name"] + (" *" if m["name"] == report["best_single"] else ""),
            f"{m['quality']:.4f}",
            f"{m['cost']:.3e}",
        ]
        for m in report["models"]
    ]
    console.print(
        _rich(("single models (mean over judged rows)", ["model", "quality", "cost USD"], models))
    )
    note = report["protocol"].get("note")
    if note:
        console.print(f"note: {note}")
    tables = [
        _main_table(report),
        plan_table(report),
        group_table(report),
        task_table(report) if per_task else None,
    ]
    for table in tables:
        if table is not None:
            console.print(_rich(table))


def _md(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(report: dict[str, Any]) -> str:
    """The main table as Markdown."""
    return "\n".join(_md(*summary_rows(report))) + "\n"


def write_markdown(
    report: dict[str, Any], path: str | Path, command: str = "", per_task: bool = False
) -> None:
    """The single models, the main table and the per-group (and per-task) tables as Markdown."""
    proto = report["protocol"]
    lines = [f"`{command}`", ""] if command else []
    note = f" {proto['note'][0].upper()}{proto['note'][1:]}." if proto.get("note") else ""
    lines += [
        f"{proto['rows']} rows, {describe(proto)}, {proto['bootstrap_resamples']} bootstrap "
        f"resamples ({intervals_note(proto)}); best single model: {report['best_single']}.{note}",
        "",
        "| model | quality | cost USD |",
        "|---|---|---|",
    ]
    lines += [f"| {m['name']} | {m['quality']:.4f} | {m['cost']:.3e} |" for m in report["models"]]
    lines += ["", *_md(*summary_rows(report))]
    for table in (
        plan_table(report),
        group_table(report),
        task_table(report) if per_task else None,
    ):
        if table is not None:
            title, header, rows = table
            lines += ["", f"{title[0].upper()}{title[1:]}:", "", *_md(header, rows)]
    try:
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--markdown {path}: cannot write ({exc.strerror})") from None


def write_json(report: dict[str, Any], path: str | Path) -> None:
    try:
        Path(path).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--json {path}: cannot write ({exc.strerror})") from None
