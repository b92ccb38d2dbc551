"""Selection algorithms: one registry mapping a decision's ``select`` to a Selector class.

``select: cheapest`` builds ``cheapest()``; ``select: {type: weighted}`` passes the
other keys as options; ``select: {router: PATH, willingness_to_pay: W}`` loads a
trained router artifact (``polyroute.selectors.learned``).  The learned routers
themselves live in :mod:`polyroute.routers`.
"""

from polyroute.registry import Registry
from polyroute.types import Selector

SELECTORS: Registry[type[Selector]] = Registry(
    "selector",
    {
        "static": "polyroute.selectors.static:StaticSelector",
        "cheapest": "polyroute.selectors.cheapest:CheapestSelector",
        "weighted": "polyroute.selectors.weighted:WeightedSelector",
        "fastest": "polyroute.selectors.fastest:FastestSelector",
        "least-busy": "polyroute.selectors.least_busy:LeastBusySelector",
        "router": "polyroute.selectors.learned:LearnedSelector",
        "bandit": "polyroute.selectors.bandit:BanditSelector",
    },
)

__all__ = ["SELECTORS"]
