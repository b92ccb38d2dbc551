"""Request and response plugins (see ``polyroute.plugins.base``): one file each, one registry.

A ``plugins: [{type: NAME, ...options}]`` list, at the top level (every request) or
on a decision, becomes plugin instances built once at load as
``cls(options, where, env)``.
"""

from polyroute.plugins.base import BasePlugin
from polyroute.registry import Registry

PLUGINS: Registry[type[BasePlugin]] = Registry(
    "plugin",
    {
        "system_prompt": "polyroute.plugins.system_prompt:SystemPrompt",
        "block": "polyroute.plugins.block:Block",
        "guard": "polyroute.plugins.guard:Guard",
        "output_guard": "polyroute.plugins.output_guard:OutputGuard",
        "pii": "polyroute.plugins.pii:PiiPlugin",
        "semantic_cache": "polyroute.plugins.semantic_cache:SemanticCache",
    },
)

__all__ = ["PLUGINS", "BasePlugin"]
