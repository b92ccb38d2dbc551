"""``polyroute route --input FILE --output FILE``: route many prompts, call no model.

Input rows (JSON lines; blank lines skipped): ``{"id": ..., "prompt": "..."}`` or
``{"id": ..., "messages": [...]}`` (an OpenAI chat ``messages`` array), optionally
``"model"`` (default: ``--model``).  Every row is checked before any is routed; a
bad one is an error naming the file, the line and what was expected.

Output rows, one per input row and in its order: ``{"id", "decision",
"candidates", "signals": {name: value}}`` with every configured signal (numbers
as numbers, labels as strings, sets as sorted lists, unknown as null), plus
``"refused": CODE`` when a guard (or ``action: block``) would refuse it and
``"plugins": [...]`` when a guard fired (its signals, a reroute's target; the
``decision`` is then the one rerouted to).  A row the engine cannot route (no
decision matches, say) is written as ``{"id", "error"}``, never dropped, and the
command then exits 1.  Users tune a config on their own traffic with it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from polyroute.errors import ConfigError, PolyrouteError
from polyroute.jsonio import json_lines
from polyroute.types import JSON, Request, signals_json

ID_TYPES = (str, int)


@dataclass(frozen=True)
class RouteRow:
    """One input row: its id and the chat body to route."""

    id: str | int
    body: JSON


def read_rows(path: Path, model: str) -> list[RouteRow]:
    """Every row of ``path``, checked (an error naming ``path:line`` on the first bad one)."""
    from polyroute.server.validate import ParamError, check_body

    rows: list[RouteRow] = []
    for number, row in json_lines(path):
        where = f"{path}:{number}"
        body = _row_body(row, where, model)
        try:
            check_body(body, "chat")
        except ParamError as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
        rows.append(RouteRow(_row_id(row["id"], where), body))
    return rows


def _row_body(row: JSON, where: str, model: str) -> JSON:
    if "id" not in row:
        raise ConfigError(f'{where}: missing "id" (a string or an integer)')
    has_prompt, has_messages = "prompt" in row, "messages" in row
    if has_prompt == has_messages:
        raise ConfigError(f'{where}: expected exactly one of "prompt" (a string) or "messages"')
    if has_prompt and not isinstance(row["prompt"], str):
        raise ConfigError(f'{where}: "prompt" must be a string')
    messages = row["messages"] if has_messages else [{"role": "user", "content": row["prompt"]}]
    return {"model": row.get("model", model), "messages": messages}


def _row_id(value: Any, where: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, ID_TYPES):
        raise ConfigError(f'{where}: "id" must be a string or an integer')
    return value


def route_rows(engine: Any, rows: list[RouteRow]) -> Iterator[JSON]:
    """One output row per input row (see the module docstring)."""
    for row in rows:
        try:
            trace = engine.route(Request(row.body))
        except PolyrouteError as exc:
            yield {"id": row.id, "error": exc.message}
            continue
        out: JSON = {
            "id": row.id,
            "decision": trace.decision,
            "candidates": trace.candidates,
            "signals": signals_json(trace.signals),
        }
        if trace.outcome.startswith("refused:"):
            out["refused"] = trace.outcome.removeprefix("refused:")
        if trace.events:
            out["plugins"] = trace.events
        yield out


def run(engine: Any, input_path: Path, output: str, model: str) -> int:
    """Route ``input_path`` into ``output`` (``-``: standard output); 1 if a row failed."""
    rows = read_rows(input_path, model)
    failed = 0
    out: IO[str] = sys.stdout if output == "-" else _open_output(output)
    try:
        for result in route_rows(engine, rows):
            failed += "error" in result
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"routed {len(rows) - failed} of {len(rows)} rows ({failed} failed)", file=sys.stderr)
    return 1 if failed else 0


def _open_output(output: str) -> IO[str]:
    try:
        return Path(output).open("w", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--output {output}: cannot write: {exc}") from None
