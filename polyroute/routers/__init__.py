"""Selection algorithms: one registry mapping a decision's ``select`` to a Selector class.

``select: cheapest`` builds ``cheapest()``; ``select: {type: weighted}`` passes the
other keys as options; ``select: {router: PATH, willingness_to_pay: W}`` loads a
trained router artifact (``polyroute.routers.learned_selector``).
"""

from polyroute.registry import Registry

SELECTORS: Registry[type] = Registry(
    "selector",
    {
        "static": "polyroute.routers.static:StaticSelector",
        "cheapest": "polyroute.routers.cheapest:CheapestSelector",
        "weighted": "polyroute.routers.weighted:WeightedSelector",
        "fastest": "polyroute.routers.fastest:FastestSelector",
        "least-busy": "polyroute.routers.least_busy:LeastBusySelector",
        "router": "polyroute.routers.learned_selector:LearnedSelector",
    },
)

__all__ = ["SELECTORS"]
