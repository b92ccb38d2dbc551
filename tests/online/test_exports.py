"""The online package's public face is pinned (a new export is a decision, not an accident)."""

from __future__ import annotations

import polyroute.online as online

EXPECTED = {
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
}


def test_exports_are_pinned_and_resolve() -> None:
    assert set(online.__all__) == EXPECTED
    assert len(online.__all__) == len(EXPECTED)
    assert list(online.__all__) == sorted(online.__all__, key=lambda n: (not n.isupper(), n))
    for name in online.__all__:
        assert getattr(online, name) is not None


def test_every_registered_router_builds() -> None:
    from polyroute.online import Reward

    for name in online.ONLINE_ROUTERS.names():
        spec, params, dim = online.parse_online_spec(name, "test")
        router = online.build_online_router(
            spec,
            params,
            ("a", "b"),
            width=(dim or 0) + 2,
            reward=Reward(),
            warm_start=False,
            seed=0,
            where="test",
        )
        assert router.models == ("a", "b")
