"""The cells of the report's tables, as text: one source for the console and Markdown.

A table is ``(title, header, rows)``.  :func:`summary_rows` is the main table
(value [95 % interval], and with repeats the lowest..highest over repeats);
:func:`group_table` the per-group table of a ``--group-by`` run;
:func:`task_table` the per-task table.
"""

from __future__ import annotations

from typing import Any

Table = tuple[str, list[str], list[list[str]]]

_COLUMNS = (
    ("AIQ", "aiq", 3),
    ("Q @ best cost", "quality_at_best_cost", 3),
    ("gain", "gain_at_best_cost", 3),
    ("cost to match", "cost_fraction_to_match", 2),
)
_PAIR_COLUMNS = (("APGR", "apgr", 3), ("CPT50 %", "cpt50", 1), ("CPT80 %", "cpt80", 1))
_SPREAD_COLUMNS = (("AIQ over repeats", "aiq", 3), ("gain over repeats", "gain_at_best_cost", 3))


def fmt(value: Any, digits: int) -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    return f"{0.0:.{digits}f}" if float(text) == 0 else text  # no "-0.000"


def signed(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    text = f"{value:+.{digits}f}"
    return fmt(0.0, digits) if float(text) == 0 else text


def describe(proto: dict[str, Any]) -> str:
    """How the rows were judged, in words (``12-fold CV x 3 repeats``, ``leave-one-task-out``)."""
    if proto["mode"] == "test":
        return "held-out test set"
    k, n = proto["folds"], proto.get("repeats", 1)
    times = f" x {n} repeats (seeds {proto['seeds'][0]}..{proto['seeds'][-1]})" if n > 1 else ""
    if proto["mode"] == "cv":
        return f"{k}-fold CV{times}" if times else f"{k}-fold CV (seed {proto['seed']})"
    field, groups = proto["group_by"], len(proto["groups"])
    if proto["splitter"] == "leave-one-group-out":
        return f"leave-one-{field}-out ({groups} groups)"
    return f"{k} folds over {groups} {field} groups (seed {proto['seed']}){times}"


def intervals_note(proto: dict[str, Any]) -> str:
    if proto.get("repeats", 1) > 1:
        return (
            f"mean of {proto['repeats']} repeats [95 % bootstrap interval of that mean]; "
            "lowest..highest of the repeats"
        )
    return "95 % bootstrap intervals"


def _cell(row: dict[str, Any], key: str, digits: int) -> str:
    text = fmt(row["metrics"].get(key), digits)
    iv = row.get("intervals", {}).get(key)
    if iv is not None:
        text += f" [{fmt(iv[0], digits)},{fmt(iv[1], digits)}]"
    return text


def _range(row: dict[str, Any], key: str, digits: int) -> str:
    rng = row.get("repeats", {}).get(key, {}).get("range")
    return "—" if rng is None else f"{fmt(rng[0], digits)}..{fmt(rng[1], digits)}"


def _delta(row: dict[str, Any]) -> str:
    d = row.get("paired", {}).get("aiq")
    if d is None or d["delta"] is None:
        return ""
    iv = d["interval"]
    text = signed(d["delta"])
    return text if iv is None else f"{text} [{signed(iv[0])},{signed(iv[1])}]"


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the main table (value [95 % interval])."""
    pair = any("apgr" in r["metrics"] for r in report["routers"])
    cols = _COLUMNS + (_PAIR_COLUMNS if pair else ())
    spread = _SPREAD_COLUMNS if report["protocol"].get("repeats", 1) > 1 else ()
    ref = next((r["paired"]["reference"] for r in report["routers"] if "paired" in r), None)
    header = ["router", *(c[0] for c in cols), *(c[0] for c in spread)]
    header += [f"AIQ - {ref}"] if ref else []
    rows = []
    for r in report["routers"]:
        fit = r.get("fit_seconds")
        cells = [
            r["name"] if r["kind"] == "router" else f"({r['name']})",
            *(_cell(r, k, d) for _, k, d in cols),
            *(_range(r, k, d) for _, k, d in spread),
        ]
        cells += [_delta(r)] if ref else []
        rows.append([*cells, "" if fit is None else f"{fit:.1f}"])
    return [*header, "fit s"], rows


def group_table(report: dict[str, Any]) -> Table | None:
    """Per held-out group: its rows, the best single model's quality there, each router's gain.

    The last row counts the groups where each router beats the best single model.
    """
    by_name = {r["name"]: r for r in report["routers"] if "per_group" in r}
    if not by_name:
        return None
    best = by_name["best-single"]["per_group"]
    shown = [r for r in report["routers"] if r["kind"] != "baseline" and "per_group" in r]
    proto = report["protocol"]
    field = proto.get("group_by", "group")
    header = [field, "rows", "best single Q", *(r["name"] for r in shown)]
    rows = []
    for group, size in proto.get("groups", {}).items():
        gains = [signed(r["per_group"][group].get("gain_at_best_cost")) for r in shown]
        rows.append([group, str(size), fmt(best[group].get("max_quality"), 3), *gains])
    wins = [
        sum(1 for g in r["per_group"].values() if (g.get("gain_at_best_cost") or 0.0) > 0)
        for r in shown
    ]
    total = len(proto.get("groups", {}))
    rows.append(["groups with gain > 0", "", "", *(f"{w}/{total}" for w in wins)])
    title = (
        f"per {field}, judged by routers that never saw it: gain in quality at the best "
        f"single model's cost ({report['best_single']}) on that {field}"
    )
    return title, header, rows


def task_table(report: dict[str, Any]) -> Table | None:
    """Quality at the best single model's cost, per task (the mean over repeats, if any)."""
    routers = [r for r in report["routers"] if "per_task" in r]
    if not routers:
        return None
    repeats = report["protocol"].get("repeats", 1)
    title = "per task: quality at the best single model's cost"
    title += f" (mean of {repeats} repeats)" if repeats > 1 else ""
    header = ["task", *(r["name"] for r in routers)]
    rows = [
        [task, *(fmt(r["per_task"][task].get("quality_at_best_cost"), 3) for r in routers)]
        for task in routers[0]["per_task"]
    ]
    return title, header, rows
