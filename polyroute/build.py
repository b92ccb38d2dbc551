"""Turn a validated ``Config`` into runtime parts: signals, backends, compiled decisions.

``Config`` (pydantic) checks each block's shape; building checks every
cross-reference (unknown signal, model, selector, plugin or provider names,
reroute targets) in the same pass that makes the runtime parts, so a config is
validated and built once, by ``Engine``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyroute.backends import PROVIDERS, Backend, CircuitBreaker
from polyroute.budget import parse_budget
from polyroute.errors import ConfigError
from polyroute.plans import PLANS
from polyroute.plugins import PLUGINS, BasePlugin
from polyroute.plugins.base import PluginEnv
from polyroute.rules import compile_rule, signals_used
from polyroute.selectors import SELECTORS
from polyroute.signals import SIGNALS, BaseSignal
from polyroute.store import STORES
from polyroute.types import Decision, Selector, Store

if TYPE_CHECKING:
    from polyroute.config import Config, DecisionConfig


def build_store(config: Config, raw: dict[str, Any] | None = None, where: str = "store") -> Store:
    """The config's ``store`` (or ``raw``, the store of section ``where``)."""
    options = dict(config.store if raw is None else raw)
    kind = str(options.pop("type", "memory"))
    cls = STORES.get(kind, f"{config.source}: {where}.type")
    if kind == "sqlite" and isinstance(options.get("path"), str):
        options["path"] = str(Path(config.base_dir) / options["path"])  # beside the config
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"{config.source}: {where}: invalid options ({exc})") from None


# signal options that name a file or directory
_PATH_OPTIONS = ("model", "router")


def build_signals(config: Config) -> dict[str, BaseSignal]:
    signals: dict[str, BaseSignal] = {}
    for name, block in config.signals.items():
        where = f"{config.source}: signals.{name}"
        kind = block.get("type")
        if not isinstance(kind, str):
            raise ConfigError(f"{where}.type: expected one of {', '.join(SIGNALS.names())}")
        cls = SIGNALS.get(kind, f"{where}.type")
        options = {k: v for k, v in block.items() if k != "type"}
        for key in _PATH_OPTIONS:  # files a signal loads are relative to the config
            if isinstance(options.get(key), str):
                options[key] = str(Path(config.base_dir) / options[key])
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
    if name == "bandit" and isinstance(options.get("warm_start"), str):
        options["warm_start"] = str((Path(base_dir) / options["warm_start"]).resolve())
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"{where}: invalid options for selector {name!r} ({exc})") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def build_plugins(
    blocks: Sequence[Mapping[str, Any]], where: str, env: PluginEnv
) -> tuple[BasePlugin, ...]:
    """A ``plugins:`` list -> plugin instances, each validated against its ``Options``."""
    built = []
    for i, block in enumerate(blocks):
        at = f"{where}[{i}]"
        if not isinstance(block, Mapping):
            raise ConfigError(f"{at}: expected a mapping with type: NAME")
        cls = PLUGINS.get(str(block.get("type")), f"{at}.type")
        options = {k: v for k, v in block.items() if k != "type"}
        built.append(cls(options, at, env))
    return tuple(built)


def build_plan(
    raw: dict[str, Any] | None, where: str, base_dir: Path, models: Sequence[str]
) -> tuple[str, Any]:
    """A decision's ``plan: {KIND: VALUE}`` -> (kind, the executor's built spec)."""
    if raw is None:
        return "single", None
    if len(raw) != 1:
        raise ConfigError(f"{where}: expected one plan kind, e.g. {{cascade: ...}}")
    [(kind, value)] = raw.items()
    if kind not in PLANS.names():
        raise ConfigError(f"{where}: unknown plan {kind!r}; expected one of {PLANS.names()}")
    return kind, PLANS.get(kind).spec(value, f"{where}.{kind}", base_dir, models)


def build_decisions(
    config: Config,
    decisions: list[DecisionConfig],
    backends: Mapping[str, Backend],
    where: str,
    *,
    env: PluginEnv,
) -> list[Decision]:
    """Compile rules, build selectors and plugins; every cross-reference is checked here."""
    sets = env.signal_sets
    built = []
    seen: set[str] = set()
    for i, d in enumerate(decisions):
        at = f"{config.source}: {where}[{i}]"
        if d.name in seen:
            raise ConfigError(f"{at}.name: duplicate decision name {d.name!r}")
        seen.add(d.name)
        predicate = compile_rule(d.when, f"{at}.when", sets)
        used = signals_used(d.when)
        plugin_blocks = [{"type": "block"}, *d.plugins] if d.action == "block" else d.plugins
        plugins = build_plugins(plugin_blocks, f"{at}.plugins", env)
        used.update(name for plugin in plugins for name in plugin.signals)
        for name in sorted(used - set(config.signals)):
            raise ConfigError(
                f"{at}.when: unknown signal {name!r}; defined: {sorted(config.signals)}"
            )
        for name in d.models:
            if name not in backends:
                raise ConfigError(
                    f"{at}.models: unknown model {name!r}; defined: {sorted(backends)}"
                )
            if config.models[name].kind == "embedding":
                raise ConfigError(
                    f"{at}.models: {name!r} is an embedding model (kind: embedding); "
                    "decisions route chat requests"
                )
        selector = build_selector(d.select, f"{at}.select", config.base_dir)
        kind, spec = build_plan(d.plan, f"{at}.plan", Path(config.base_dir), d.models)
        budgets = tuple(
            parse_budget(raw, name, f"{config.source}: {w}")
            for raw, name, w in (
                (config.budget, "global", "budget"),
                (d.budget, d.name, f"{where}[{i}].budget"),
            )
            if raw is not None
        )
        built.append(
            Decision(
                name=d.name,
                priority=d.priority,
                predicate=predicate,
                candidates=tuple(backends[n] for n in d.models),
                selector=selector,
                plugins=plugins,
                sticky=d.session == "sticky",
                signals=tuple(sorted(used)),
                plan=kind,
                plan_spec=spec,
                budgets=budgets,
            )
        )
    # highest priority first; ties keep file order
    return sorted(built, key=lambda d: -d.priority)
