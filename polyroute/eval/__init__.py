"""The workbench: routing datasets, metrics (AIQ, APGR, CPT), curves, reports and plots."""

from polyroute.eval.dataset import ModelPrice, RoutingDataset

__all__ = ["ModelPrice", "RoutingDataset"]
