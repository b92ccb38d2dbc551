"""polyroute: an LLM router — OpenAI-compatible gateway, in-process library and workbench.

Library use::

    from polyroute import Engine, Request
    engine = Engine.from_file("polyroute.yaml")
    print(engine.route(Request.chat("prove the theorem")).decision)
"""

from polyroute.config import Config, load_config, parse_config
from polyroute.engine import Engine
from polyroute.errors import ConfigError, PolyrouteError
from polyroute.types import Request, Trace

__all__ = [
    "Config",
    "ConfigError",
    "Engine",
    "PolyrouteError",
    "Request",
    "Trace",
    "load_config",
    "parse_config",
]
__version__ = "0.1.0"
