"""Gateway keys, steering fields, header isolation, secret hygiene and the concurrency limit."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import logging
import resource
from typing import Any

import pytest
import yaml
from fakes import Behaviour, FakeUpstream

from polyroute import parse_config
from polyroute.cli import main
from polyroute.errors import ConfigError, Unauthorized
from polyroute.server.limits import ensure_file_limit
from polyroute.server.security import KeyRing, check_exposure, hash_key, new_key

KEY_A = "pr-test-key-alpha-0123456789"
KEY_B = "pr-test-key-bravo-0123456789"
KEYS = [
    {"name": "team-a", "sha256": hash_key(KEY_A)},
    {"name": "team-b", "sha256": hash_key(KEY_B)},
]
UPSTREAM_KEY = "sk-secret-large-key"  # the key tests/fakes.gateway_config gives model "large"


def chat(prompt: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}], **extra}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


# --------------------------------------------------------------------------- keys


def test_keys_are_required_when_configured(make_client: Any) -> None:
    client = make_client(api_keys=KEYS)
    for headers in ({}, bearer("wrong"), {"authorization": "Basic abc"}, bearer(KEY_A + "x")):
        r = client.post("/v1/chat/completions", json=chat(), headers=headers)
        assert r.status_code == 401, headers
        error = r.json()["error"]
        assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    for path in ("/v1/models",):
        assert client.get(path).status_code == 401
    assert client.post("/v1/route", json=chat()).status_code == 401
    assert client.get("/healthz").status_code == 200  # probes stay open
    assert client.get("/readyz").status_code == 200


def test_right_key_passes_and_names_the_client(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(api_keys=KEYS)
    with caplog.at_level(logging.INFO, logger="polyroute.access"):
        r = client.post("/v1/chat/completions", json=chat(), headers=bearer(KEY_B))
        assert r.status_code == 200
        r2 = client.post("/v1/chat/completions", json=chat(), headers={"x-api-key": KEY_A})
        assert r2.status_code == 200
    assert client.get("/v1/models", headers=bearer(KEY_A)).status_code == 200
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert '"client":"team-b"' in logged and '"client":"team-a"' in logged
    assert KEY_A not in logged and KEY_B not in logged


def test_keyring_hashes_and_checks_every_digest() -> None:
    ring = KeyRing(parse_config({"models": {"m": {"base_url": "http://x"}}, "server": {
        "api_keys": KEYS}}).server.api_keys)  # fmt: skip
    assert ring.check({"authorization": f"bearer {KEY_A}"}) == "team-a"
    assert ring.check({"authorization": f"Bearer  {KEY_B} "}) == "team-b"
    with pytest.raises(Unauthorized):
        ring.check({"authorization": "Bearer"})
    with pytest.raises(Unauthorized):
        ring.check({"x-api-key": "é-not-a-key"})
    assert not KeyRing(()).enabled


def test_config_refuses_a_plain_key_or_duplicates() -> None:
    base: dict[str, Any] = {"models": {"m": {"base_url": "http://x"}}}
    with pytest.raises(ConfigError) as err:
        parse_config({**base, "server": {"api_keys": [{"name": "a", "sha256": KEY_A}]}}, "p.yaml")
    assert "p.yaml" in err.value.message and "server.api_keys.0.sha256" in err.value.message
    assert "never the key itself" in err.value.message
    assert KEY_A not in err.value.message or "got" in err.value.message
    twice = [KEYS[0], {"name": "team-a", "sha256": hash_key(KEY_B)}]
    with pytest.raises(ConfigError, match="own name"):
        parse_config({**base, "server": {"api_keys": twice}})
    prefixed = parse_config({**base, "server": {"api_keys": [{"name": "a", "sha256": "sha256:"
                            + hash_key(KEY_A).upper()}]}})  # fmt: skip
    assert prefixed.server.api_keys[0].sha256 == hash_key(KEY_A)


def test_an_open_gateway_is_a_choice() -> None:
    open_cfg = parse_config({"models": {"m": {"base_url": "http://x"}}}, "g.yaml")
    assert "any local process" in (check_exposure(open_cfg, "127.0.0.1") or "")
    with pytest.raises(ConfigError, match=r"g.yaml: server.api_keys: refusing to serve on 0.0.0.0"):
        check_exposure(open_cfg, "0.0.0.0")
    allowed = parse_config(
        {"models": {"m": {"base_url": "http://x"}}, "server": {"allow_unauthenticated": True}}
    )
    assert "open to anyone" in (check_exposure(allowed, "0.0.0.0") or "")
    keyed = parse_config({"models": {"m": {"base_url": "http://x"}}, "server": {"api_keys": KEYS}})
    assert check_exposure(keyed, "0.0.0.0") is None


def test_serve_refuses_an_open_public_gateway(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "open.yaml"
    config.write_text(yaml.safe_dump({"models": {"m": {"base_url": "http://127.0.0.1:9/v1"}}}))
    assert main(["serve", "--config", str(config), "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in capsys.readouterr().err


def test_keys_cli_prints_a_key_and_only_its_digest(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["keys", "new", "--name", "team-c"]) == 0
    out = capsys.readouterr().out
    key = next(line.strip() for line in out.splitlines() if line.strip().startswith("pr-"))
    entry = yaml.safe_load(out[out.index("server:") :])
    stored = entry["server"]["api_keys"][0]
    assert stored == {"name": "team-c", "sha256": hashlib.sha256(key.encode()).hexdigest()}
    assert key not in out[out.index("server:") :]
    monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
    assert main(["keys", "hash", "--name", "team-c"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == entry
    assert main(["keys", "new", "--name", "bad name!"]) == 2
    assert "--name" in capsys.readouterr().err
    assert len({new_key() for _ in range(50)}) == 50


# --------------------------------------------------------------------------- steering


@pytest.mark.parametrize("field", ["api_base", "base_url", "api_key", "extra_headers", "headers"])
def test_clients_cannot_steer_the_upstream(
    make_client: Any, upstreams: tuple[FakeUpstream, ...], field: str
) -> None:
    evil = "http://127.0.0.1:9/v1"
    r = make_client().post("/v1/chat/completions", json=chat(**{field: evil}))
    assert r.status_code == 400
    assert r.json()["error"]["param"] == field
    assert all(not up.requests for up in upstreams)


def test_model_names_are_not_urls(make_client: Any, upstreams: tuple[FakeUpstream, ...]) -> None:
    r = make_client().post("/v1/chat/completions", json={**chat(), "model": "http://evil/v1"})
    assert r.status_code == 404
    assert all(not up.requests for up in upstreams)


def test_client_headers_never_reach_the_upstream(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    hostile = {
        "authorization": f"Bearer {KEY_A}",
        "connection": "keep-alive, x-evil",
        "x-evil": "1",
        "proxy-authorization": "Basic c2VjcmV0",
        "x-forwarded-for": "10.0.0.1",
        "x-forwarded-host": "evil.example",
        "te": "trailers",
        "upgrade": "websocket",
        "openai-organization": "org-evil",
        "cookie": "session=abc",
    }
    r = make_client(api_keys=KEYS).post(
        "/v1/chat/completions", json=chat("prove it"), headers=hostile
    )
    assert r.status_code == 200
    sent = {k.lower(): v for k, v in upstreams[1].headers[-1].items()}
    assert sent["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the config's key, not the client's
    assert not {k for k in hostile if k != "authorization"} & set(sent)
    assert sent["host"].startswith("127.0.0.1:")


def test_upstream_response_headers_are_not_relayed(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    upstreams[0].behaviour = Behaviour(
        headers={
            "x-upstream-internal": "1",
            "set-cookie": "a=b",
            "proxy-authenticate": "Basic",
            "keep-alive": "timeout=99",
            "trailer": "x-t",
        }
    )
    r = make_client().post("/v1/chat/completions", json=chat())
    assert r.status_code == 200
    leaked = {"x-upstream-internal", "set-cookie", "proxy-authenticate", "keep-alive", "trailer"}
    assert not leaked & {k.lower() for k in r.headers}


def test_config_refuses_hop_by_hop_backend_headers() -> None:
    with pytest.raises(ConfigError, match=r"models.m.headers: .*Connection"):
        parse_config({"models": {"m": {"base_url": "http://x", "headers": {"Connection": "x"}}}})


# --------------------------------------------------------------------------- secrets


def test_upstream_secrets_never_reach_clients_or_logs(
    make_client: Any, upstreams: tuple[FakeUpstream, ...], caplog: pytest.LogCaptureFixture
) -> None:
    small, large = upstreams
    echo = f"Incorrect API key provided: {UPSTREAM_KEY}"
    bodies: list[str] = []
    with caplog.at_level(logging.INFO):
        client = make_client(retries=0)
        large.queue = [Behaviour(mode="status", status=400, error_message=echo)]
        r = client.post("/v1/chat/completions", json=chat("prove it"))
        assert r.status_code == 400 and "Incorrect API key provided: ***" in r.text
        bodies.append(r.text)
        large.behaviour = small.behaviour = Behaviour(mode="status", status=500, error_message=echo)
        r = client.post("/v1/chat/completions", json=chat("prove it"))
        assert r.status_code == 502
        assert "large: status_500" in r.json()["error"]["message"]
        bodies.append(r.text)
        r = client.post("/v1/chat/completions", json=chat("prove it", stream=True))
        bodies.append(r.text)
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "status_500" in logged  # the log does hold the attempts
    for text in (*bodies, logged):
        assert UPSTREAM_KEY not in text
    for text in bodies:  # clients see backend names, never upstream URLs
        assert large.base_url not in text and small.base_url not in text


# --------------------------------------------------------------------------- limits


def test_concurrency_limit_answers_429(
    make_client: Any, upstreams: tuple[FakeUpstream, ...]
) -> None:
    for up in upstreams:
        up.behaviour = Behaviour(delay_s=0.6)
    client = make_client(max_concurrent_requests=2)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        responses = list(
            pool.map(lambda _: client.post("/v1/chat/completions", json=chat()), range(6))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1
    assert set(statuses) <= {200, 429}
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "concurrency_limit"
    assert client.get("/healthz").status_code == 200
    for up in upstreams:
        up.behaviour = Behaviour()
    assert client.post("/v1/chat/completions", json=chat()).status_code == 200  # slots freed


def test_body_limit_is_413_before_reading_everything(make_client: Any) -> None:
    client = make_client(max_body_bytes=1000)
    r = client.post("/v1/chat/completions", json=chat("x" * 5000))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_the_file_limit_is_raised_for_the_concurrency_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        assert ensure_file_limit(100) is None  # 456 files are enough
        assert ensure_file_limit(2000) is None or hard < 4256
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= min(4256, hard)
        warning = ensure_file_limit(10**7)  # more than any hard limit here
        assert warning is not None and "ulimit -n" in warning
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
