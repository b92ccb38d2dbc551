"""Online routers that learn from each request's outcome, and the stream simulator.

For the gateway (and the workbench's ``polyroute simulate``)::

    features = FeatureMaker(dim=32)                     # static embedding prefix, length, bias
    bandit = LinUCB(models, features.width, reward=Reward(willingness_to_pay=3e-3))
    ctx = Context(features.transform([prompt])[0])      # + prior_quality/prior_cost if warm
    choice = bandit.choose(ctx)                         # Choice(model, greedy, explored)
    bandit.update(ctx, choice.model, Outcome(quality=1.0, cost=2e-4))
    saved = bandit.to_dict()                            # JSON; bandit.load(saved) restores it

:class:`LinUCB` / :class:`LinearThompson` (``polyroute.online.linear``),
:class:`EMARouter` (``polyroute.online.ema``), their states :class:`LinearState` /
:class:`EMAState`, the :class:`BudgetController` and :func:`replay` over a
:class:`Stream` (``polyroute.online.simulate``).
"""

from polyroute.online.budget import BudgetController
from polyroute.online.build import ONLINE_ROUTERS, build_online_router, parse_online_spec
from polyroute.online.ema import EMARouter
from polyroute.online.features import FeatureMaker, artifact_priors
from polyroute.online.linear import LinearBandit, LinearThompson, LinUCB
from polyroute.online.simulate import Drift, Replay, StaticRouter, Stream, replay, summarise
from polyroute.online.state import EMAState, LinearState
from polyroute.online.types import TARGETS, Choice, Context, OnlineRouter, Outcome, Reward

__all__ = [
    "ONLINE_ROUTERS",
    "TARGETS",
    "BudgetController",
    "Choice",
    "Context",
    "Drift",
    "EMARouter",
    "EMAState",
    "FeatureMaker",
    "LinUCB",
    "LinearBandit",
    "LinearState",
    "LinearThompson",
    "OnlineRouter",
    "Outcome",
    "Replay",
    "Reward",
    "StaticRouter",
    "Stream",
    "artifact_priors",
    "build_online_router",
    "parse_online_spec",
    "replay",
    "summarise",
]
