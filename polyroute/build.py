"""Turn a validated ``Config`` into runtime parts: signals, backends, compiled decisions.

``check_config`` runs the cross-reference checks at load (unknown signal,
model, selector, plugin or provider names are config errors, not runtime
surprises).  Building selectors may load artifacts, so it happens once, in
``Engine``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyroute.backends import PROVIDERS, Backend, CircuitBreaker
from polyroute.errors import ConfigError
from polyroute.plugins import PLUGINS
from polyroute.rules import compile_rule, signals_used
from polyroute.selectors import SELECTORS
from polyroute.signals import SIGNALS, BaseSignal
from polyroute.store import STORES
from polyroute.types import Decision, Selector, Store

if TYPE_CHECKING:
    from polyroute.config import Config, DecisionConfig


def build_store(config: Config) -> Store:
    options = dict(config.store)
    cls = STORES.get(str(options.pop("type", "memory")), f"{config.source}: store.type")
    try:
        return cls(**options)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise ConfigError(f"{config.source}: store: invalid options ({exc})") from None


def build_signals(config: Config) -> dict[str, BaseSignal]:
    signals: dict[str, BaseSignal] = {}
    for name, block in config.signals.items():
        where = f"{config.source}: signals.{name}"
        kind = block.get("type")
        if not isinstance(kind, str):
            raise ConfigError(f"{where}.type: expected one of {', '.join(SIGNALS.names())}")
        cls = SIGNALS.get(kind, f"{where}.type")
        options = {k: v for k, v in block.items() if k != "type"}
        signals[name] = cls(name, options, where)
    return signals


def build_backends(
    config: Config, extra_headers: Mapping[str, str] | None = None
) -> dict[str, Backend]:
    """One backend per model; ``extra_headers`` go on every upstream request (the loop marker)."""
    server = config.server
    backends: dict[str, Backend] = {}
    for name, m in config.models.items():
        cls = PROVIDERS.get(m.provider, f"{config.source}: models.{name}.provider")
        key = m.api_key.get_secret_value() if m.api_key else None
        try:
            headers = {**m.headers, **(extra_headers or {})}
            provider = cls(m.base_url, api_key=key or None, headers=headers, **m.options)
        except TypeError as exc:
            raise ConfigError(f"{config.source}: models.{name}.options: {exc}") from None
        backends[name] = Backend(
            name=name,
            upstream_model=m.model or name,
            provider=provider,
            input_price_per_mtok=m.input_price_per_mtok,
            output_price_per_mtok=m.output_price_per_mtok,
            timeout_s=m.timeout_s,
            weight=m.weight,
            breaker=CircuitBreaker(server.breaker_failures, server.breaker_reset_s),
        )
    return backends


def selector_spec(select: str | Mapping[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """``"cheapest"`` / ``{type: NAME, ...}`` / ``{router: PATH, ...}`` -> (name, options)."""
    if isinstance(select, str):
        return select, {}
    options = dict(select)
    if "router" in options:
        return "router", options
    kind = options.pop("type", None)
    if not isinstance(kind, str):
        raise ConfigError(f"{where}: expected a selector name, {{type: NAME}} or {{router: PATH}}")
    return kind, options


def build_selector(select: str | Mapping[str, Any], where: str, base_dir: str) -> Selector:
    name, options = selector_spec(select, where)
    cls = SELECTORS.get(name, where)
    if name == "router":
        options["router"] = str((Path(base_dir) / str(options["router"])).resolve())
    try:
        return cls(**options)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise ConfigError(f"{where}: invalid options for selector {name!r} ({exc})") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def _noop_handler(*_: Any) -> Any:
    return None


def check_plugins(
    plugins: list[dict[str, Any]], where: str
) -> tuple[tuple[type, dict[str, Any]], ...]:
    chain = []
    for i, block in enumerate(plugins):
        options = {k: v for k, v in block.items() if k != "type"}
        cls = PLUGINS.get(str(block.get("type")), f"{where}[{i}].type")
        try:
            cls(_noop_handler, **options)
        except TypeError as exc:
            raise ConfigError(f"{where}[{i}]: invalid options for plugin ({exc})") from None
        chain.append((cls, options))
    return tuple(chain)


def build_decisions(
    config: Config,
    decisions: list[DecisionConfig],
    backends: Mapping[str, Backend],
    where: str,
    *,
    signals: Mapping[str, BaseSignal],
    with_selectors: bool = True,
) -> list[Decision]:
    """``signals`` are the built signals (set-valued ones check ``contains`` at load)."""
    sets = {n: m for n, sig in signals.items() if (m := sig.members()) is not None}
    built = []
    seen: set[str] = set()
    for i, d in enumerate(decisions):
        at = f"{config.source}: {where}[{i}]"
        if d.name in seen:
            raise ConfigError(f"{at}.name: duplicate decision name {d.name!r}")
        seen.add(d.name)
        predicate = compile_rule(d.when, f"{at}.when", sets)
        used = signals_used(d.when)
        for name in sorted(used - set(config.signals)):
            raise ConfigError(
                f"{at}.when: unknown signal {name!r}; defined: {sorted(config.signals)}"
            )
        for name in d.models:
            if name not in backends:
                raise ConfigError(
                    f"{at}.models: unknown model {name!r}; defined: {sorted(backends)}"
                )
        if with_selectors:
            selector = build_selector(d.select, f"{at}.select", config.base_dir)
        else:
            SELECTORS.get(selector_spec(d.select, f"{at}.select")[0], f"{at}.select")
            selector = SELECTORS.get("static")()
        built.append(
            Decision(
                name=d.name,
                priority=d.priority,
                predicate=predicate,
                candidates=tuple(backends[n] for n in d.models),
                selector=selector,
                plugins=check_plugins(d.plugins, f"{at}.plugins"),
                signals=tuple(sorted(used)),
            )
        )
    # highest priority first; ties keep file order
    return sorted(built, key=lambda d: -d.priority)


def check_config(config: Config) -> None:
    """Cross-reference checks, run by ``load_config``: no network, no artifacts loaded."""
    signals = build_signals(config)
    STORES.get(str(config.store.get("type", "memory")), f"{config.source}: store.type")
    backends = build_backends(config)
    build_decisions(
        config, config.decisions, backends, "decisions", signals=signals, with_selectors=False
    )
    for name, profile in config.profiles.items():
        if name == "auto" or name in config.models:
            raise ConfigError(
                f"{config.source}: profiles.{name}: "
                "a profile may not be named 'auto' or like a model"
            )
        build_decisions(
            config,
            profile.decisions,
            backends,
            f"profiles.{name}.decisions",
            signals=signals,
            with_selectors=False,
        )
