"""Plan executors, one per plan kind, in one registry (see ``polyroute.plans.base``)."""

from polyroute.plans.base import Plan, PlanExecutor, StreamStart
from polyroute.registry import Registry

PLANS: Registry[type[PlanExecutor]] = Registry(
    "plan",
    {
        "single": "polyroute.plans.single:SingleExecutor",
        "cascade": "polyroute.plans.cascade:CascadeExecutor",
        "ensemble": "polyroute.plans.ensemble:EnsembleExecutor",
        "adaptive": "polyroute.plans.adaptive:AdaptiveExecutor",
    },
)

__all__ = ["PLANS", "Plan", "PlanExecutor", "StreamStart"]
