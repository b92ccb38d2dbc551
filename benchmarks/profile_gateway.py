"""Where the gateway spends its time under load: py-spy on ``polyroute serve``.

    pip install py-spy
    python benchmarks/profile_gateway.py [--seconds 8] [--out /tmp/gateway.collapsed]

Starts the same fake upstream + gateway as ``bench_gateway.py``, drives a
saturated 32-concurrent burst for ``--seconds`` while ``py-spy record`` samples
the gateway process, then prints the functions with the most samples, by
self time and inclusive time.  The collapsed stacks are kept in ``--out``
(open them with speedscope or flamegraph.pl).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench_gateway import CONCURRENCY, burst, servers

INTERESTING = ("polyroute", "starlette", "uvicorn", "aiohttp", "orjson", "asyncio", "httptools")


def frame_label(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``; lines are merged."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def summarise(collapsed: Path, top: int) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_label(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self time:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_time.most_common(top)]
    out += ["", "inclusive time (polyroute, starlette, uvicorn, aiohttp, ...):"]
    relevant = [(f, n) for f, n in inclusive.most_common() if any(k in f for k in INTERESTING)]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in relevant[:top]]
    return "\n".join(out)


async def drive(gateway: str, pid: int, seconds: float, out: Path, py_spy: str) -> None:
    argv = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--duration", str(int(seconds)),
            "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    spy = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        await asyncio.sleep(0.5)  # let py-spy attach
        result = await burst(gateway + "/v1/chat/completions", 10**6, CONCURRENCY, seconds)
        print(f"burst: {result['n']} requests, {result['rps']:.0f} req/s while sampling")
        _, err = await asyncio.wait_for(spy.communicate(), timeout=seconds + 30)
        if spy.returncode:
            raise SystemExit(f"py-spy failed: {err.decode(errors='replace')}")
    finally:
        if spy.returncode is None:
            spy.kill()
            await spy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "gw.collapsed")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    import uvloop

    with (
        tempfile.TemporaryDirectory(prefix="polyroute-profile-") as tmp,
        servers(Path(tmp), 0.0) as stack,
    ):
        uvloop.run(drive(stack.gateway, stack.gateway_pid, args.seconds, args.out, py_spy))
    print(summarise(args.out, args.top))
    print(f"\ncollapsed stacks: {args.out}")


if __name__ == "__main__":
    main()
