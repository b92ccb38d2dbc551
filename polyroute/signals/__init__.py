"""Signals: one module per signal family, one registry mapping config ``type`` to class.

A signal class is built as ``cls(name, options, where)`` from its config block
(``options`` is the block without ``type``) and exposes ``compute(request)``.
"""

from polyroute.registry import Registry
from polyroute.signals.base import BaseSignal, SignalSet

SIGNALS: Registry[type[BaseSignal]] = Registry(
    "signal type",
    {
        "keyword": "polyroute.signals.keyword:KeywordSignal",
        "tokens": "polyroute.signals.tokens:TokenCountSignal",
        "language": "polyroute.signals.language:LanguageSignal",
        "conversation": "polyroute.signals.conversation:ConversationSignal",
        "metadata": "polyroute.signals.metadata:MetadataSignal",
        "jailbreak": "polyroute.signals.jailbreak:JailbreakSignal",
        "domain": "polyroute.signals.domain:DomainSignal",
        "pii": "polyroute.signals.pii:PiiSignal",
        "similarity": "polyroute.signals.similarity:SimilaritySignal",
        "difficulty": "polyroute.signals.difficulty:DifficultySignal",
    },
)

__all__ = ["SIGNALS", "BaseSignal", "SignalSet"]
