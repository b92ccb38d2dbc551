"""Codecs: one module per wire format, each translating to and from the chat-shaped
internal request (``polyroute.types.Request``)."""
