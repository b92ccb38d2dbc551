"""Online routers by name: ``bandit`` (= ``linucb``), ``linucb``, ``thompson``, ``ema``.

A spec is ``NAME[:KEY=VALUE...]`` as for the learned routers (``linucb:alpha=0.5:dim=64``).
``dim`` (bandits only) is the embedding width of the features
(:class:`~polyroute.online.features.FeatureMaker`); every other key is a
hyperparameter of the router class, checked against its ``__init__``.
"""

from __future__ import annotations

from typing import Any

from polyroute.errors import ConfigError
from polyroute.online.types import OnlineRouter, Reward
from polyroute.registry import Registry

ONLINE_ROUTERS: Registry[type[Any]] = Registry(
    "online router",
    {
        "bandit": "polyroute.online.linear:LinUCB",
        "ema": "polyroute.online.ema:EMARouter",
        "linucb": "polyroute.online.linear:LinUCB",
        "thompson": "polyroute.online.linear:LinearThompson",
    },
)
DEFAULT_DIM = 32
_RESERVED = ("models", "dim", "reward", "warm_start", "seed")


def parse_online_spec(spec: str, where: str) -> tuple[str, dict[str, Any], int | None]:
    """``(name, hyperparameters, embedding dim)``; the dim is None for ``ema``."""
    from polyroute.eval.evaluate import parse_spec

    name, params = parse_spec(spec)
    ONLINE_ROUTERS.get(name, where)
    for key in _RESERVED[2:]:
        if key in params:
            raise ConfigError(f"{where}: {key!r} is set by the simulator's options, not the spec")
    dim = params.pop("dim", DEFAULT_DIM)
    if name == "ema":
        return name, params, None
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise ConfigError(f"{where}: dim={dim!r}: expected an integer >= 1 (or null: all)")
    return name, params, dim


def build_online_router(
    name: str,
    params: dict[str, Any],
    models: tuple[str, ...],
    *,
    width: int,
    reward: Reward,
    warm_start: bool,
    seed: int,
    where: str,
) -> OnlineRouter:
    """An online router ``name`` over ``models`` with ``width`` shared features."""
    from polyroute.routers.base import validate_params

    cls = ONLINE_ROUTERS.get(name, where)
    params = validate_params(cls, params, where)
    if name == "ema":
        if warm_start:
            raise ConfigError(f"{where}: --warm-start applies to the bandits, not to 'ema'")
        router: OnlineRouter = cls(models, reward=reward, seed=seed, **params)
        return router
    bandit: OnlineRouter = cls(
        models, width, reward=reward, warm_start=warm_start, seed=seed, **params
    )
    return bandit
