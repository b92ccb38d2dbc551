"""The report of ``bench_compare.py``: the main table, the verdicts, details, RESULTS_compare.md.

``Run`` holds everything one run measured; the functions here only read it.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _compare_load import CONCURRENCY, Errors
from _compare_proc import GroupUsage
from _harness import HERE, machine_facts, pct

RESULTS = HERE / "RESULTS_compare.md"
TARGET_RATIO = 10.0
FLAT_TOLERANCE = 0.10
NAMES = ("direct", "polyroute", "litellm")
Verdict = tuple[str, str, str, bool | None]
Row = Callable[[str, Callable[[str], str]], None]
METHOD = """\
The same fast OpenAI-compatible upstream (`benchmarks/fake_upstream.py`) is measured direct,
through `polyroute serve` (one worker, `model="auto"`, a keyword rule sends math prompts to
`large` and the rest to `small`, one JSON access-log line per request) and through LiteLLM's
proxy (`litellm --config`, one worker, no master key, retries off in `litellm_settings` and
`router_settings`, no callbacks, local cost map, its default logging; the client names the
model, since LiteLLM has no keyword rule).  The client is aiohttp on uvloop in the harness
process; everything shares the same 2 cores.  Added latency is a percentile through the proxy
minus the same percentile direct, from interleaved rounds; after every request the harness
polls until no server has used CPU for {quiet} ms (LiteLLM keeps a core busy for up to several
ms after each response; without the wait that work lands on the next target's request).
TTFB is the time to the first body chunk of a `stream=true` chat.  RSS is VmRSS summed over
the server's process group (for `direct`, the fake upstream's).  An error is any non-200,
malformed body, stream without `[DONE]`, timeout or connection failure.  The in-flight test
starts every request at once, each on its own connection from a bare asyncio HTTP/1.1 client
(a fifth of aiohttp's client CPU per request, so that the server is what is measured), against
a second upstream that answers after {delay} s, through fresh server processes; RSS is read
{settle} s after each burst, once the connections are closed."""


@dataclass
class Run:
    args: argparse.Namespace
    errors: Errors = field(default_factory=Errors)
    notes: list[str] = field(default_factory=list)
    litellm_versions: dict[str, str] | None = None
    litellm_problem: str | None = None
    seq: dict[str, Any] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)
    loops: dict[str, dict[str, Any]] = field(default_factory=dict)
    rss_idle: dict[str, GroupUsage] = field(default_factory=dict)
    rss_loaded: dict[str, GroupUsage] = field(default_factory=dict)
    inflight: dict[str, dict[str, Any]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    lock: str = "not taken (--no-lock)"

    @property
    def names(self) -> list[str]:
        return [n for n in NAMES if n != "litellm" or self.litellm_problem is None]


def _ms(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f} ms" if abs(x) < 100 else f"{x:.0f} ms"


def _ratio(num: float, den: float) -> float:
    if math.isnan(num) or math.isnan(den):
        return math.nan
    return math.inf if den <= 0 < num else num / den if den > 0 else math.nan


def _ratio_text(r: float) -> str:
    return "—" if math.isnan(r) else "∞" if math.isinf(r) else f"{r:.1f}x"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "**FAIL**"


def added(data: dict[str, Any], key: str, name: str, q: float) -> float:
    if name not in data.get(key, {}) or not data[key][name]:
        return math.nan
    return pct(data[key][name], q) - pct(data[key]["direct"], q)


def _growth(record: dict[str, Any], after: int, before: int) -> float:
    """RSS growth from after burst ``before`` to after burst ``after`` (1-based), or nan."""
    rss: list[GroupUsage] = record["rss"]  # [before any burst, after burst 1, ...]
    if len(rss) <= after:
        return math.nan
    return (rss[after].rss_kib - rss[before].rss_kib) / rss[before].rss_kib


def verdicts(run: Run) -> list[Verdict]:
    """(check, value, target, ok) for each target of the issue."""
    out = _ratio_verdicts(run)
    n_err = run.errors.total("polyroute")
    out.append(("polyroute errors, every phase", str(n_err), "0", n_err == 0))
    rec = run.inflight.get("polyroute")
    if rec is not None:
        out += _inflight_verdicts(run, rec)
    return out


def _ratio_verdicts(run: Run) -> list[Verdict]:
    """Added latency (p50, p99) and throughput, polyroute against LiteLLM."""
    lit = run.litellm_problem is None and "litellm" in run.loops
    out: list[Verdict] = []
    for q in (50, 99):
        pr, li = added(run.seq, "lat", "polyroute", q), added(run.seq, "lat", "litellm", q)
        r = _ratio(li, pr)
        out.append(
            (
                f"added latency p{q}: LiteLLM ÷ polyroute",
                _ratio_text(r) if lit else "n/a",
                f"≥ {TARGET_RATIO:.0f}x",
                (r >= TARGET_RATIO) if lit else None,
            )
        )
    if lit:
        r = _ratio(run.loops["polyroute"]["rps"], run.loops["litellm"]["rps"])
        out.append(
            (
                "throughput at 32 concurrent: polyroute ÷ LiteLLM",
                _ratio_text(r),
                f"≥ {TARGET_RATIO:.0f}x",
                r >= TARGET_RATIO,
            )
        )
    else:
        out.append(("throughput at 32 concurrent: polyroute ÷ LiteLLM", "n/a", "≥ 10x", None))
    return out


def _inflight_verdicts(run: Run, rec: dict[str, Any]) -> list[Verdict]:
    """Every in-flight request answered; polyroute's RSS flat burst over burst."""
    out: list[Verdict] = []
    ok = all(b["ok"] == b["n"] for b in rec["bursts"])
    oks = " / ".join(f"{b['ok']:,}" for b in rec["bursts"])
    out.append(
        (
            f"polyroute, {run.args.inflight:,} in flight: answered per burst",
            oks,
            f"all {run.args.inflight:,}",
            ok,
        )
    )
    checks = [(2, 1, "burst 2 vs after burst 1 (the pool is warm from burst 1)")]
    if len(rec["rss"]) > 3:
        last = len(rec["rss"]) - 1
        checks.append((last, last - 1, f"burst {last} vs after burst {last - 1} (a leak shows)"))
    for after, before, what in checks:
        growth = _growth(rec, after, before)
        out.append(
            (
                f"polyroute RSS after {what}",
                "—" if math.isnan(growth) else f"{100 * growth:+.1f} %",
                f"≤ +{100 * FLAT_TOLERANCE:.0f} %",
                None if math.isnan(growth) else growth <= FLAT_TOLERANCE,
            )
        )
    return out


def main_table(run: Run) -> str:
    names = run.names
    head = "| measure | " + " | ".join(
        {"direct": "direct", "polyroute": "polyroute", "litellm": "LiteLLM"}[n] for n in names
    )
    lines = [head + " |", "|" + " --- |" * (len(names) + 1)]

    def row(label: str, cell: Callable[[str], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(n) for n in names) + " |")

    _fast_rows(run, row)
    if run.inflight:
        _inflight_rows(run, row)
    return "\n".join(lines)


def _fast_rows(run: Run, row: Row) -> None:
    """Rows of phases 1-5: latency, TTFB, the closed loop, errors, RSS."""
    seq, st = run.seq, run.stream

    def percentile(data: dict[str, Any], key: str, q: float) -> Callable[[str], str]:
        return lambda n: _ms(pct(data[key][n], q))

    def over_direct(data: dict[str, Any], key: str, q: float) -> Callable[[str], str]:
        return lambda n: "—" if n == "direct" else _ms(added(data, key, n, q))

    def loop(fmt: Callable[[dict[str, Any]], str]) -> Callable[[str], str]:
        return lambda n: fmt(run.loops[n])

    for q in (50, 99):
        row(f"sequential latency p{q}", percentile(seq, "lat", q))
    for q in (50, 99):
        row(f"**added latency p{q}** (over direct)", over_direct(seq, "lat", q))
    for q in (50, 99):
        row(f"streaming TTFB p{q}", percentile(st, "ttfb", q))
    for q in (50, 99):
        row(f"added TTFB p{q} (over direct)", over_direct(st, "ttfb", q))
    row(
        f"**{CONCURRENCY} concurrent: throughput** ({run.args.burst:,} requests)",
        loop(lambda x: f"{x['rps']:,.0f} req/s"),
    )
    row(
        f"{CONCURRENCY} concurrent: p50 / p99",
        loop(lambda x: f"{x['p50']:.1f} / {x['p99']:.1f} ms"),
    )
    row(
        f"{CONCURRENCY} concurrent: server CPU per request",
        loop(lambda x: f"{x['cpu_ms_per_req']:.2f} ms"),
    )
    row("**errors** (every phase)", lambda n: str(run.errors.total(n)))
    row("RSS idle after start-up (process group)", lambda n: f"{run.rss_idle[n].rss_mib:.0f} MiB")
    row("RSS after the load above", lambda n: f"{run.rss_loaded[n].rss_mib:.0f} MiB")


def _inflight_rows(run: Run, row: Row) -> None:
    """Rows of phase 6: each burst, RSS before and after, peak RSS and open fds."""
    inf = run.inflight
    k = f"{run.args.inflight:,}"

    def burst_cell(n: str, b: int) -> str:
        if n not in inf or len(inf[n]["bursts"]) <= b:
            return "—"
        x = inf[n]["bursts"][b]
        return (
            f"{x['ok']:,} ok, {sum(x['errors'].values()):,} errors, all done in "
            f"{x['elapsed']:.1f} s, p99 {x['p99'] / 1000:.2f} s"
        )

    most = max(len(r["bursts"]) for r in inf.values())

    def burst(b: int) -> Callable[[str], str]:
        return lambda n: burst_cell(n, b)

    for b in range(most):
        row(f"{k} in flight (upstream {run.args.inflight_delay_s} s), burst {b + 1}", burst(b))

    def rss_cell(n: str) -> str:
        if n not in inf:
            return "—"
        return " → ".join(f"{u.rss_mib:.0f}" for u in inf[n]["rss"]) + " MiB"

    row(f"{k} in flight: RSS before → after each burst", rss_cell)
    row(
        f"{k} in flight: peak RSS during bursts",
        lambda n: (
            "—" if n not in inf else " / ".join(f"{x:.0f}" for x in inf[n]["peak_rss"]) + " MiB"
        ),
    )
    row(
        f"{k} in flight: peak open fds per burst (server; upstream)",
        lambda n: (
            "—"
            if n not in inf or not inf[n]["peak_fds"]
            else " / ".join(f"{x:,}" for x in inf[n]["peak_fds"])
            + f"; {max(inf[n]['upstream_peak_fds']):,}"
        ),
    )


def verdict_table(run: Run) -> str:
    lines = ["| target | result | required | verdict |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {_verdict(d)} |" for a, b, c, d in verdicts(run)]
    return "\n".join(lines)


def details(run: Run) -> list[str]:
    out = []
    s = run.seq
    out.append(
        f"Sequential: {s['rounds']:,} rounds (one request to each target per round, "
        f"order rotated each round; after each request, a wait until no server had used CPU "
        f"for {run.args.quiet_ms:g} ms); "
        f"streaming: {run.stream['rounds']:,} rounds; "
        f"{CONCURRENCY} concurrent: {run.args.burst:,} requests per target after "
        f"{CONCURRENCY * 4} warm-up requests."
    )
    dec = ", ".join(f"{k or '(none)'} {v:,}" for k, v in sorted(s["decisions"].items()))
    out.append(f"polyroute decisions seen in the sequential phase: {dec}.")
    for n in run.names:
        lp = run.loops[n]
        out.append(
            f"{n} at {CONCURRENCY} concurrent: {lp['n']:,} ok in {lp['elapsed']:.1f} s; "
            f"client CPU {lp['client_cpu_ms_per_req']:.2f} ms per request."
        )
    for n, rec in run.inflight.items():
        for b, x in enumerate(rec["bursts"], 1):
            errs = ", ".join(f"{k}: {v:,}" for k, v in x["errors"].items()) or "none"
            out.append(
                f"{n}, in-flight burst {b}: {x['ok']:,}/{x['n']:,} ok, errors {errs}; "
                f"answers p50 {x['p50'] / 1000:.2f} s, p99 {x['p99'] / 1000:.2f} s, "
                f"max {x['max'] / 1000:.2f} s; wall {x['elapsed']:.2f} s; CPU during the burst: "
                f"server {x['cpu_s']['server']:.2f} s, upstream {x['cpu_s']['upstream']:.2f} s, "
                f"client {x['client_cpu_s']:.2f} s."
            )
    for n in run.names:
        counts = run.errors.by_target.get(n)
        if counts:
            out.append(f"{n} errors: " + "; ".join(f"{k} x {v:,}" for k, v in counts.items()))
    return [f"- {line}" for line in out + run.notes]


def versions_facts(run: Run) -> list[str]:
    import importlib.metadata as md

    def v(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    def run_git(*args: str) -> str:
        cmd = ["git", "-C", str(HERE.parent), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout

    git = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = run_git("rev-parse", "--short", "HEAD").strip()
        dirty = run_git("status", "--porcelain", "polyroute").strip()
        git = rev + (" (polyroute/ has uncommitted changes)" if dirty else "")
    facts = [
        f"polyroute {v('polyroute')} at git {git}; uvicorn {v('uvicorn')}, aiohttp {v('aiohttp')}, "
        f"uvloop {v('uvloop')}, starlette {v('starlette')} (polyroute, fake upstream, client)",
    ]
    if run.litellm_versions:
        lv = run.litellm_versions
        facts.append(
            f"LiteLLM {lv['litellm']} in {run.args.litellm_venv}: uvicorn {lv['uvicorn']}"
            f", fastapi {lv['fastapi']}, httpx {lv['httpx']}, aiohttp {lv['aiohttp']}"
        )
    else:
        facts.append(f"LiteLLM: unavailable ({run.litellm_problem})")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    facts.append(f"RLIMIT_NOFILE (soft/hard, inherited by the servers): {soft}/{hard}")
    return facts


def render(run: Run) -> str:
    parts = []
    if run.litellm_problem is not None:
        parts.append(f"**LiteLLM unavailable: {run.litellm_problem}** — polyroute vs direct only.")
        parts.append("")
    parts += [main_table(run), "", verdict_table(run), ""]
    return "\n".join(parts)


def write_results(run: Run, table: str) -> None:
    command = "python benchmarks/bench_compare.py" + "".join(f" {a}" for a in sys.argv[1:])
    text = "\n".join(
        [
            "# Side by side: direct, polyroute, LiteLLM (one run, one machine)",
            "",
            f"Produced by (benchmark lock {run.lock}, so no other benchmark ran meanwhile):",
            "",
            "```",
            command,
            "```",
            "",
            f"Date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}; the run took "
            f"{run.elapsed_s / 60:.1f} min.",
            "",
            METHOD.format(
                quiet=f"{run.args.quiet_ms:g}",
                delay=run.args.inflight_delay_s,
                settle=run.args.settle_s,
            ),
            "",
            table,
            "",
            "Details:",
            "",
            *details(run),
            "",
            "Machine:",
            "",
            *(f"- {fact}" for fact in machine_facts() + versions_facts(run)),
            "",
        ]
    )
    RESULTS.write_text(text)
