"""The workbench: routing datasets, metrics (AIQ, APGR, CPT), curves, reports and plots.

Uses ``polyroute.routers`` and never the network.  Judge routers with
``polyroute.eval.evaluate.evaluate(data, Plan(...))``.
"""

from polyroute.dataset import ModelPrice, RoutingDataset
from polyroute.eval.evaluate import Plan
from polyroute.eval.io import convert_routerbench, load_dataset, load_prompts, write_dataset

__all__ = [
    "ModelPrice",
    "Plan",
    "RoutingDataset",
    "convert_routerbench",
    "load_dataset",
    "load_prompts",
    "write_dataset",
]
