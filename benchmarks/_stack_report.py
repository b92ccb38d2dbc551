"""The report of ``bench_stack.py``: the table and ``RESULTS_stack.md``.

``Tally`` holds one stack's measurements over every round; the driver fills it,
the functions here only read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from _stack_candidates import CURRENT, VENV, Stack
from _stack_load import CONCURRENCY

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS_stack.md"


@dataclass
class Tally:
    """One stack's measurements over every round."""

    stack: Stack
    direct_ms: list[float] = field(default_factory=list)
    relay_ms: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    sat_ms: list[float] = field(default_factory=list)
    cpu_us: list[dict[str, float]] = field(default_factory=list)
    seq_cpu_us: list[float] = field(default_factory=list)
    errors: int = 0
    requests: int = 0
    failure: str = ""


def _cpu(t: Tally, who: str) -> float:
    return median(c[who] for c in t.cpu_us)


def _rel(value: float, ref: float) -> str:
    return f"{100 * (value / ref - 1):+.0f} %"


def report(tallies: list[Tally], direct: Tally, rounds: int) -> str:
    from _harness import pct

    lines = [
        "| stack: server · upstream client · app | sequential added p50 / p99 (ms) "
        "| saturated req/s, median (range) | vs current | saturated p50 / p99 (ms) "
        "| server CPU µs/req, one at a time / saturated (vs current) "
        "| upstream / client CPU µs/req, saturated | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {direct.stack.label} | — | {median(direct.rps):,.0f} ({min(direct.rps):,.0f}-"
        f"{max(direct.rps):,.0f}) | — | {pct(direct.sat_ms, 50):.2f} / "
        f"{pct(direct.sat_ms, 99):.2f} | — | {_cpu(direct, 'upstream'):.0f} / "
        f"{_cpu(direct, 'client'):.0f} | {direct.errors} |",
    ]
    base = next((t for t in tallies if t.stack.key == CURRENT and t.rps), None)
    lines += [_row(t, base) for t in tallies]
    return "\n".join(lines) + "\n\n" + _notes(tallies, rounds) + "\n"


def _row(t: Tally, base: Tally | None) -> str:
    """One relay's table row, compared with ``base`` (the current stack's tally, if it ran)."""
    from _harness import pct

    name = f"**{t.stack.label}** (current)" if t.stack.key == CURRENT else t.stack.label
    if t.failure or not t.rps:
        return f"| {name} | failed: {t.failure or 'not run'} | | | | | | |"
    base_rps = median(base.rps) if base else float("nan")
    base_seq = median(base.seq_cpu_us) if base else float("nan")
    base_sat = _cpu(base, "relay") if base else float("nan")
    add50 = pct(t.relay_ms, 50) - pct(t.direct_ms, 50)
    add99 = pct(t.relay_ms, 99) - pct(t.direct_ms, 99)
    rps, seq_cpu, sat_cpu = median(t.rps), median(t.seq_cpu_us), _cpu(t, "relay")
    return (
        f"| {name} | {add50:.3f} / {add99:.3f} | {rps:,.0f} ({min(t.rps):,.0f}-"
        f"{max(t.rps):,.0f}) | {_rel(rps, base_rps)} | {pct(t.sat_ms, 50):.2f} / "
        f"{pct(t.sat_ms, 99):.2f} | {seq_cpu:.0f} / {sat_cpu:.0f} ({_rel(seq_cpu, base_seq)} "
        f"/ {_rel(sat_cpu, base_sat)}) | {_cpu(t, 'upstream'):.0f} / {_cpu(t, 'client'):.0f} "
        f"| {t.errors} |"
    )


def _notes(tallies: list[Tally], rounds: int) -> str:
    n_seq = max((len(t.relay_ms) for t in tallies), default=0)
    n_sat = max((t.requests for t in tallies), default=0)
    return (
        f"{rounds} round(s); per stack up to {n_seq} sequential pairs (pooled over rounds) and "
        f"{n_sat} saturated requests at {CONCURRENCY} concurrent (medians over rounds).  "
        "'vs current' compares with the first relay row (the gateway's server and client, no "
        "framework).  Server CPU is the user + system time of the relay's whole process "
        "group (granian: its Rust threads too) over a phase divided by the phase's "
        "requests: one request at a time (the sequential phase, which also counts what a "
        "server burns while idle during the interleaved direct requests) and saturated.  It is "
        "less sensitive to the shared machine's load than req/s.  Saturated latency is "
        "queueing (32 in flight / throughput), not per-request cost.  Errors count both phases."
    )


def write_results(table: str, argv: list[str], versions: dict[str, str], took_s: float) -> None:
    from _harness import machine_facts

    command = "flock /tmp/polyroute-bench.lock python benchmarks/bench_stack.py"
    command += "" if not argv else " " + " ".join(argv)
    packages = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    text = "\n".join([
        "# Server x upstream-client benchmark (the gateway's relay path)", "",
        "Produced by:", "", "```", command, "```", "",
        f"Run time: {took_s / 60:.1f} minutes.", "",
        "A minimal relay (parse the chat body with orjson, set `model`, POST it to",
        "`benchmarks/fake_upstream.py` over a pooled keep-alive connection, return the",
        "upstream's JSON) on each server x upstream client, one worker each, plus the real",
        "gateway.  Client: one aiohttp process (uvloop) on the same 2 cores, keep-alive.",
        "Added latency = percentile via the stack - the same percentile direct to the",
        "upstream, interleaved request by request.  The machine is shared with other work:",
        "throughput varies by about ±30 % run to run; the server CPU per request is the",
        "steadier comparison.", "",
        table, "",
        f"Packages (venv `{VENV}`, with the system site-packages): {packages}.", "",
        "Machine:", "", *(f"- {fact}" for fact in machine_facts()), "",
    ])  # fmt: skip
    RESULTS.write_text(text)
