"""The YAML config as immutable pydantic models, validated once at load.

Errors are ``ConfigError`` naming the file, the key path inside it and what was
expected.  ``${VAR}`` (or ``${VAR:-default}``) in any string is replaced from the
environment at load; an unset variable with no default becomes empty and is
reported in ``Config.warnings`` (an empty ``api_key`` means "send no key").
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from polyroute.config_yaml import load_yaml_file
from polyroute.errors import ConfigError

# hop-by-hop (RFC 9110 7.6.1) and framing headers: a backend's ``headers`` may not set them
RESERVED_HEADERS = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
        "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
    }
)  # fmt: skip
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


MAX_NAME_CHARS = 128


def _check_name(name: str) -> str:
    """Model, decision and profile names reach response headers and log lines: any
    printable text (non-ASCII is percent-encoded in headers), no control characters."""
    if not name.isprintable() or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise ValueError(
            f"invalid name {name[:MAX_NAME_CHARS]!r}: expected 1 to {MAX_NAME_CHARS} printable "
            "characters (no control characters such as newlines or tabs)"
        )
    return name


class ModelConfig(_Frozen):
    provider: str = "openai"
    #: chat (routed; chat and completions) or embedding (``POST /v1/embeddings`` only)
    kind: Literal["chat", "embedding"] = "chat"
    base_url: str
    model: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    input_price_per_mtok: float = Field(default=0.0, ge=0)
    output_price_per_mtok: float = Field(default=0.0, ge=0)
    weight: float = Field(default=1.0, ge=0)
    headers: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _end_to_end_headers(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(k for k in value if k.lower() in RESERVED_HEADERS)
        if reserved:
            raise ValueError(
                f"{', '.join(reserved)} may not be set here: hop-by-hop and framing headers "
                "are managed by the HTTP client (use api_key for authorization)"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")


class DecisionConfig(_Frozen):
    name: str = Field(min_length=1)
    priority: int = 0
    when: Any = True
    # route: its models answer; block: refused (shorthand for a first plugin {type: block})
    action: Literal["route", "block"] = "route"
    models: list[str] = Field(default_factory=list)
    select: str | dict[str, Any] = "static"
    plugins: list[dict[str, Any]] = Field(default_factory=list)
    # a stored conversation (Responses API) continues on the model that answered its last
    # turn (sticky) or is routed afresh each turn (per_turn)
    session: Literal["per_turn", "sticky"] = "per_turn"
    # how the chosen models answer: one with failover (the default), or a plan
    # (``{cascade: DIR}``, ``{cascade: {stages: [...], accept: {...}}}``); see polyroute.plans
    plan: dict[str, Any] | None = None
    # this decision's spending budget (polyroute.budget)
    budget: dict[str, Any] | None = None

    _name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _models(self) -> DecisionConfig:
        if self.action == "route" and not self.models:
            raise ValueError("a decision that routes needs models: [NAME, ...]")
        return self


class ProfileConfig(_Frozen):
    decisions: list[DecisionConfig] = Field(min_length=1)
    description: str = ""


class ApiKeyConfig(_Frozen):
    """A gateway key, stored as the SHA-256 of the key (``polyroute keys new`` makes both)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@-]+$")
    sha256: str

    @field_validator("sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        digest = value.removeprefix("sha256:").lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(
                "expected the SHA-256 hex digest of the key (64 hex characters), never the key "
                "itself; `polyroute keys hash` prints it"
            )
        return digest


class FeedbackConfig(_Frozen):
    """``feedback:``: keep a record per served request for ``POST /v1/feedback`` and
    learning (``polyroute.feedback``)."""

    # a week: feedback may come late; records hold no prompt text unless asked
    ttl_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    store_prompts: bool = False
    retry_window_s: float = Field(default=600.0, gt=0)
    # SQLite beside the config by default (zero setup); {type: redis, url: ...} for replicas
    store: dict[str, Any] = Field(
        default_factory=lambda: {"type": "sqlite", "path": "polyroute-feedback.sqlite3"}
    )


class ServerConfig(_Frozen):
    api_keys: tuple[ApiKeyConfig, ...] = ()
    allow_unauthenticated: bool = False
    max_concurrent_requests: int = Field(default=8192, ge=1)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    # a request head (line and headers) must be complete this long after the connection
    # opened or the previous response ended: silent and trickling clients are cut off
    head_timeout_s: float = Field(default=10.0, gt=0)
    # a response write that cannot drain (the client stopped reading) for this long
    # closes the connection; None: stream_idle_timeout_s
    write_timeout_s: float | None = Field(default=None, gt=0)
    # requests over this many body bytes are routed (signals, rules, selection) in a
    # worker thread, so a huge prompt never stalls the event loop
    route_in_thread_bytes: int = Field(default=64 * 1024, ge=0)
    # text signals (keyword, regex) read at most this many characters of a prompt:
    # the first and last halves of it (routing cost is bounded whatever the prompt)
    signal_text_max_chars: int = Field(default=256 * 1024, ge=1024)
    # the encoder signals of one request must be computed within this; else unknown
    signal_timeout_s: float = Field(default=2.0, gt=0)
    # threads for the request-path encoders' batches (MiniLM, the fine-tuned graph);
    # None: the cores this process may use
    encoder_threads: int | None = Field(default=None, ge=1, le=64)
    deadline_s: float = Field(default=120.0, gt=0)
    stream_idle_timeout_s: float = Field(default=60.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_base_s: float = Field(default=0.05, ge=0)
    backoff_max_s: float = Field(default=2.0, ge=0)
    retry_after_max_s: float = Field(default=10.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=30.0, gt=0)
    log_requests: bool = True

    @field_validator("api_keys")
    @classmethod
    def _unique_keys(cls, value: tuple[ApiKeyConfig, ...]) -> tuple[ApiKeyConfig, ...]:
        names = [k.name for k in value]
        digests = [k.sha256 for k in value]
        if len(set(names)) != len(names) or len(set(digests)) != len(digests):
            raise ValueError("every key needs its own name and its own digest")
        return value


class Config(_Frozen):
    models: dict[str, ModelConfig] = Field(min_length=1)
    signals: dict[str, dict[str, Any]] = Field(default_factory=dict)
    decisions: list[DecisionConfig] = Field(default_factory=list)
    profiles: dict[str, ProfileConfig] = Field(default_factory=dict)
    server: ServerConfig = Field(default_factory=ServerConfig)
    store: dict[str, Any] = Field(default_factory=lambda: {"type": "memory"})
    feedback: FeedbackConfig | None = None
    # one spending budget over every request (polyroute.budget)
    budget: dict[str, Any] | None = None
    # request and response plugins run for every request, before the decision's own
    plugins: list[dict[str, Any]] = Field(default_factory=list)
    source: str = "<config>"
    base_dir: str = "."
    warnings: tuple[str, ...] = ()

    @field_validator("models", "profiles")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            _check_name(name)
        return value


def _substitute(value: Any, missing: list[str]) -> Any:
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            env = os.environ.get(m.group(1))
            if env is not None:
                return env
            if m.group(2) is not None:
                return m.group(2)
            missing.append(m.group(1))
            return ""

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, missing) for v in value]
    return value


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = err.get("input")
        shown = "" if err["type"] == "missing" else f" (got {got!r:.80})"
        lines.append(f"  {path}: {err['msg']}{shown}")
    return "\n".join(lines)


def parse_config(raw: Any, source: str = "<config>", base_dir: str = ".") -> Config:
    """Validate a parsed YAML/JSON document's shape; raises ConfigError with every problem
    found.  Cross-references (signal, model, selector and plugin names) are checked when
    the engine is built from it (``Engine(config)``, ``polyroute validate``): one pass."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    missing: list[str] = []
    data = _substitute(raw, missing)
    warnings = tuple(f"environment variable {name} is not set" for name in dict.fromkeys(missing))
    data = {**data, "source": source, "base_dir": base_dir, "warnings": warnings}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, substitute and validate a YAML config file (see :func:`parse_config`)."""
    file = Path(path)
    raw = load_yaml_file(file)  # bounded: file size, alias expansion, depth
    return parse_config(raw, str(file), str(file.resolve().parent))
