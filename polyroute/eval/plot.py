"""Plot an evaluation report: each router's curve, the single models as points, the oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polyroute.errors import ConfigError


def plot_report(report: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Write a PNG (matplotlib, Agg backend): mean cost (x, log) vs mean quality (y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    try:
        for r in report["routers"]:
            cost, quality = r["curve"]["cost"], r["curve"]["quality"]
            if r["kind"] == "oracle":
                ax.plot(cost, quality, "k--", lw=1.2, label="oracle")
            elif r["kind"] == "router":
                aiq = r["metrics"].get("aiq")
                label = r["name"] if aiq is None else f"{r['name']} (AIQ {aiq:.3f})"
                ax.plot(cost, quality, "-", lw=1.5, label=label)
            elif r["name"] == "random":
                ax.plot(cost, quality, "x", color="grey", ms=8, label="random")
        for m in report["models"]:
            star = m["name"] == report["best_single"]
            ax.plot(
                m["cost"], m["quality"], "*" if star else "o", color="0.3", ms=11 if star else 6
            )
            ax.annotate(
                m["name"],
                (m["cost"], m["quality"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
        costs = [m["cost"] for m in report["models"]]
        if min(costs) > 0:
            ax.set_xscale("log")
            ax.set_xlim(min(costs) / 1.15, max(costs) * 1.9)  # room for the labels
        ax.set_xlabel("mean cost per prompt (USD)")
        ax.set_ylabel("mean quality")
        ax.set_title(title or "cost-quality curves (sweeping willingness to pay)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        fig.savefig(str(path))
    except OSError as exc:
        raise ConfigError(f"--plot {path}: cannot write ({exc.strerror})") from None
    finally:
        plt.close(fig)
