"""Render an evaluation report (the dict of :func:`polyroute.eval.evaluate.evaluate`).

``render`` prints rich tables to a console; ``write_json`` saves the report;
``markdown`` gives the same summary as a Markdown table for benchmark notes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from polyroute.errors import ConfigError

_COLUMNS = (
    ("AIQ", "aiq", 3),
    ("Q @ best cost", "quality_at_best_cost", 3),
    ("gain", "gain_at_best_cost", 3),
    ("cost to match", "cost_fraction_to_match", 2),
)
_PAIR_COLUMNS = (("APGR", "apgr", 3), ("CPT50 %", "cpt50", 1), ("CPT80 %", "cpt80", 1))


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    return f"{0.0:.{digits}f}" if float(text) == 0 else text  # no "-0.000"


def _cell(row: dict[str, Any], key: str, digits: int) -> str:
    text = _fmt(row["metrics"].get(key), digits)
    iv = row.get("intervals", {}).get(key)
    if iv is not None:
        text += f" [{_fmt(iv[0], digits)},{_fmt(iv[1], digits)}]"
    return text


def _columns(report: dict[str, Any]) -> tuple[tuple[str, str, int], ...]:
    pair = any("apgr" in r["metrics"] for r in report["routers"])
    return _COLUMNS + (_PAIR_COLUMNS if pair else ())


def _delta(row: dict[str, Any]) -> str:
    d = row.get("paired", {}).get("aiq")
    if d is None or d["delta"] is None:
        return ""
    iv = d["interval"]
    text = _signed(d["delta"])
    return text if iv is None else f"{text} [{_signed(iv[0])},{_signed(iv[1])}]"


def _signed(value: float) -> str:
    text = f"{value:+.3f}"
    return "0.000" if float(text) == 0 else text


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the main table (value [95 % interval])."""
    cols = _columns(report)
    ref = next((r["paired"]["reference"] for r in report["routers"] if "paired" in r), None)
    header = ["router", *(c[0] for c in cols)]
    header += [f"AIQ - {ref}"] if ref else []
    rows = []
    for r in report["routers"]:
        fit = r.get("fit_seconds")
        cells = [
            r["name"] if r["kind"] == "router" else f"({r['name']})",
            *(_cell(r, k, d) for _, k, d in cols),
        ]
        cells += [_delta(r)] if ref else []
        rows.append([*cells, "" if fit is None else f"{fit:.1f}"])
    return [*header, "fit s"], rows


def render(report: dict[str, Any], per_task: bool = False) -> None:
    """Print the single models, the main table and optionally the per-task table."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 180)
    models = Table(title="single models (mean over judged rows)")
    for col in ("model", "quality", "cost USD"):
        models.add_column(col, justify="left" if col == "model" else "right")
    for m in report["models"]:
        star = " *" if m["name"] == report["best_single"] else ""
        models.add_row(m["name"] + star, f"{m['quality']:.4f}", f"{m['cost']:.3e}")
    console.print(models)
    header, rows = summary_rows(report)
    proto = report["protocol"]
    how = f"{proto['folds']}-fold CV" if proto["mode"] == "cv" else "held-out test set"
    table = Table(title=f"routers ({how}, {proto['rows']} rows, 95 % bootstrap intervals)")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if per_task:
        _render_tasks(console, report)


def _render_tasks(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    routers = [r for r in report["routers"] if "per_task" in r]
    if not routers:
        return
    table = Table(title="per task: quality at the best single model's cost")
    table.add_column("task")
    for r in routers:
        table.add_column(r["name"], justify="right")
    for task in routers[0]["per_task"]:
        cells = [_fmt(r["per_task"][task].get("quality_at_best_cost"), 3) for r in routers]
        table.add_row(task, *cells)
    console.print(table)


def markdown(report: dict[str, Any]) -> str:
    """The main table as Markdown."""
    header, rows = summary_rows(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_markdown(report: dict[str, Any], path: str | Path, command: str = "") -> None:
    """The single models and the main table as Markdown, headed by the command."""
    proto = report["protocol"]
    how = (
        f"{proto['folds']}-fold CV (seed {proto['seed']})"
        if proto["mode"] == "cv"
        else "held-out test set"
    )
    lines = [f"`{command}`", ""] if command else []
    lines += [
        f"{proto['rows']} rows, {how}, {proto['bootstrap_resamples']} bootstrap resamples "
        f"(95 % intervals in brackets); best single model: {report['best_single']}.",
        "",
        "| model | quality | cost USD |",
        "|---|---|---|",
    ]
    lines += [f"| {m['name']} | {m['quality']:.4f} | {m['cost']:.3e} |" for m in report["models"]]
    try:
        Path(path).write_text("\n".join(lines) + "\n\n" + markdown(report), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--markdown {path}: cannot write ({exc.strerror})") from None


def write_json(report: dict[str, Any], path: str | Path) -> None:
    try:
        Path(path).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--json {path}: cannot write ({exc.strerror})") from None
