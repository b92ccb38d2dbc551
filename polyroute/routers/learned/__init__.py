"""Learned routers: the one registry (config/CLI name -> class) and its lookup.

Names: ``knn``, ``logistic``, ``mlp``, ``mf``, ``cluster``, ``stack``, ``auto``
and the baselines ``random``, ``cheapest``, ``best-single``, ``oracle``.
``get_router(name)`` returns the class; ``ROUTERS.names()`` lists them all.
Adding a router is one new file here plus one line in the table below.
"""

from __future__ import annotations

from polyroute.registry import Registry
from polyroute.routers.base import LearnedRouter

__all__ = ["BASELINES", "ROUTERS", "get_router"]

_P = "polyroute.routers.learned"
ROUTERS: Registry[type[LearnedRouter]] = Registry(
    "learned router",
    {
        "auto": f"{_P}.auto:AutoRouter",
        "best-single": f"{_P}.baselines:BestSingleRouter",
        "cheapest": f"{_P}.baselines:CheapestRouter",
        "cluster": f"{_P}.cluster:ClusterRouter",
        "knn": f"{_P}.knn:KNNRouter",
        "logistic": f"{_P}.logistic:LogisticRouter",
        "mf": f"{_P}.mf:MFRouter",
        "mlp": f"{_P}.mlp:MLPRouter",
        "oracle": f"{_P}.baselines:OracleRouter",
        "random": f"{_P}.baselines:RandomRouter",
        "stack": f"{_P}.stack:StackRouter",
    },
)
#: reference routers for reports (never chosen by ``auto``)
BASELINES = ("best-single", "cheapest", "oracle", "random")


def get_router(name: str, where: str = "") -> type[LearnedRouter]:
    """The learned-router class registered as ``name`` (raises ConfigError naming the choices)."""
    return ROUTERS.get(name, where)
