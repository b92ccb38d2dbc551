"""The OpenAI-compatible HTTP gateway (ASGI)."""

from polyroute.server.app import create_app

__all__ = ["create_app"]
