"""Plugins wrap the model call (Starlette-middleware style): one file each, one registry.

A decision's ``plugins: [{type: NAME, ...options}]`` becomes a chain built as
``PluginClass(next_handler, **options)``, outermost first.
"""

from polyroute.registry import Registry

PLUGINS: Registry[type] = Registry(
    "plugin",
    {
        "system_prompt": "polyroute.plugins.system_prompt:SystemPrompt",
        "block": "polyroute.plugins.block:Block",
    },
)

__all__ = ["PLUGINS"]
