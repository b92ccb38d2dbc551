"""The ``polyroute`` command: serve, route, config validate, keys, and the workbench commands.

Every expected failure prints ``polyroute: error: ...`` (naming the file, key
and expectation) and exits 2; no stack traces.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from polyroute.errors import PolyrouteError

# workbench commands live in their own modules: (module, function adding the subparser)
_WORKBENCH = [
    ("polyroute.cli_learn", "add_train_parser"),
    ("polyroute.cli_learn", "add_predict_parser"),
    ("polyroute.cli_eval", "add_eval_parser"),
    ("polyroute.cli_eval", "add_calibrate_parser"),
    ("polyroute.cli_keys", "add_keys_parser"),
    ("polyroute.cli_signals", "add_train_signal_parser"),
    ("polyroute.cli_cache", "add_train_cache_parser"),
    ("polyroute.cli_online", "add_simulate_parser"),
]


def _cmd_validate(args: argparse.Namespace) -> int:
    from polyroute.config import load_config
    from polyroute.engine import Engine

    config = load_config(args.file)
    Engine(config)  # builds selectors too (loads router artifacts)
    for warning in config.warnings:
        print(f"warning: {args.file}: {warning}", file=sys.stderr)
    decisions = len(config.decisions) + sum(len(p.decisions) for p in config.profiles.values())
    print(
        f"{args.file}: OK ({len(config.models)} models, {len(config.signals)} signals, "
        f"{decisions} decisions, {len(config.profiles)} profiles)"
    )
    return 0


def _cmd_route(args: argparse.Namespace) -> int:
    from polyroute.engine import Engine
    from polyroute.errors import ConfigError
    from polyroute.types import Request, signals_json

    if (args.prompt is None) == (args.input is None):
        raise ConfigError("route: give a PROMPT or --input FILE (not both)")
    if args.input is None and args.output is not None:
        raise ConfigError("route: --output goes with --input FILE")
    engine = Engine.from_file(args.config)
    if args.input is not None:
        from polyroute import cli_route

        return cli_route.run(engine, Path(args.input), args.output or "-", args.model)
    trace = engine.route(Request.chat(args.prompt, model=args.model))
    if args.json:
        print(json.dumps(trace.as_dict(), indent=2))
        return 0
    print(f"decision:   {trace.decision}")
    print(f"candidates: {' -> '.join(trace.candidates)}  (first is tried first)")
    shown = signals_json(trace.signals).items()
    print(f"signals:    {', '.join(f'{k}={v!r}' for k, v in shown) or '-'}")
    width = max((len(e.model) for e in trace.estimates), default=0)
    for e in trace.estimates:
        quality = f"  predicted quality {e.quality:.3f}" if e.quality is not None else ""
        print(f"  {e.model:<{width}}  est. cost ${e.cost_usd:.6f}{quality}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from polyroute.engine import Engine
    from polyroute.server import create_app
    from polyroute.server.limits import ensure_file_limit
    from polyroute.server.logs import configure_logging
    from polyroute.server.protocol import bounded_protocol
    from polyroute.server.security import check_exposure

    configure_logging(args.log_level)
    engine = Engine.from_file(args.config)
    exposure = check_exposure(engine.config, args.host)
    files = ensure_file_limit(engine.config.server.max_concurrent_requests)
    for warning in [*engine.config.warnings, *(w for w in (exposure, files) if w)]:
        logging.getLogger("polyroute").warning("config %s: %s", args.config, warning)
    app = create_app(engine)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=bounded_protocol(engine.config.server),
        ws="none",  # upgrade requests get a plain JSON answer, not an empty 403
        log_config=None,  # uvicorn's records go through polyroute's JSON handler
        access_log=False,
        proxy_headers=False,  # X-Forwarded-* are client-controlled: not trusted (and 3 % CPU)
        server_header=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    return 0


def _version() -> str:
    """The installed distribution's version (the package's own if not installed)."""
    from importlib import metadata

    from polyroute import __version__

    try:
        return metadata.version("polyroute")
    except metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyroute", description="An LLM router.")
    parser.add_argument(
        "--version", action="version", version=f"polyroute {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    config = sub.add_parser("config", help="work with config files")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    validate = config_sub.add_parser("validate", help="check a config file and report every error")
    validate.add_argument("file", help="the YAML config to check (and build: artifacts load)")
    validate.set_defaults(func=_cmd_validate)

    serve = sub.add_parser("serve", help="run the OpenAI-compatible gateway")
    serve.add_argument("--config", required=True, help="the YAML config file")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (beyond loopback: set keys)"
    )
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="least severe log level written (the access log is at info)",
    )
    serve.set_defaults(func=_cmd_serve)

    route = sub.add_parser(
        "route", help="explain where a prompt (or a file of them) would go; no model is called"
    )
    route.add_argument("--config", required=True, help="the YAML config file")
    route.add_argument("--model", default="auto", help="auto, a profile, or a model name")
    route.add_argument("--json", action="store_true", help="print the full decision trace")
    route.add_argument(
        "--input",
        metavar="FILE",
        help='JSON lines {"id", "prompt"} or {"id", "messages"}: route every row',
    )
    route.add_argument(
        "--output",
        metavar="FILE",
        help='with --input: one {"id", "decision", "candidates", "signals"} line per row '
        "(default: standard output)",
    )
    route.add_argument("prompt", nargs="?", help="one prompt to route (or give --input)")
    route.set_defaults(func=_cmd_route)

    for module, adder in _WORKBENCH:
        try:
            getattr(importlib.import_module(module), adder)(sub)
        except (ImportError, AttributeError):
            continue
    for each in _parsers(parser):
        each.formatter_class = DefaultsFormatter
    return parser


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            default not in (None, False, argparse.SUPPRESS)
            and "default" not in text
            and action.option_strings
        ):
            text += f" (default: {default})"
        return text


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every subcommand's parser, recursively."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except PolyrouteError as exc:
        print(f"polyroute: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
