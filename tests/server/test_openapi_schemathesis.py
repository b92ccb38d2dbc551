"""The OpenAPI description at /openapi.json against the app that serves it.

schemathesis generates requests from the document (valid ones and, per field,
invalid ones) and sends them in-process (ASGI) to a gateway whose upstreams are
the fakes of ``tests/fakes.py``.  Checked on every response:

* ``not_a_server_error`` -- never a 5xx the document does not declare (the
  fakes answer, so 502/503/504 cannot legitimately happen here either);
* conformance -- status code documented, content type, body schema and the
  declared response headers (``x-polyroute-*``);
* ``negative_data_rejection`` -- a body the schema calls invalid gets a 4xx:
  the schema is not stricter than ``polyroute.server.validate``;
* ``positive_data_acceptance`` -- a body the schema calls valid is not refused
  with a 400: the schema is not looser than the validation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import schemathesis
from fakes import FakeUpstream, gateway_config, running
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route
from starlette.testclient import TestClient

from polyroute import Engine, parse_config
from polyroute.server import create_app
from polyroute.server.openapi import build_spec

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]


@pytest.fixture(scope="module")
def gateway_app() -> Iterator[Any]:
    with running(FakeUpstream("small"), FakeUpstream("large")) as (small, large):
        engine = Engine(parse_config(gateway_config(small.base_url, large.base_url)))
        app = create_app(engine)
        try:
            yield app
        finally:
            # schemathesis keeps an app's lifespan running until exit: end it while the
            # fakes are still up, so the engine closes its sessions cleanly
            asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def api_schema(gateway_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", gateway_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_openapi(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


def test_openapi_document_is_valid(api_schema: Any) -> None:
    api_schema.validate()  # the OpenAPI 3.1 meta-schema
    spec = build_spec()
    for component in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(component)


def test_openapi_lists_every_route(gateway_app: Any) -> None:
    r = TestClient(gateway_app).get("/openapi.json")  # no lifespan: schemathesis owns it
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    documented = {
        (path, method.upper()) for path, ops in r.json()["paths"].items() for method in ops
    }
    served = {
        (re.sub(r":\w+}", "}", route.path), method)  # {model:path} is {model} in OpenAPI
        for route in gateway_app.routes
        if isinstance(route, Route)
        for method in (route.methods or ()) - {"HEAD"}
    }
    assert documented == served


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/v1/chat/completions", "POST"), ("POST", "/healthz", "GET, HEAD")],
)
def test_405_names_the_allowed_methods(
    gateway_app: Any, method: str, path: str, allowed: str
) -> None:
    r = TestClient(gateway_app).request(method, path)
    assert r.status_code == 405
    # Starlette builds Allow from a set: the order varies between runs
    assert set(r.headers["allow"].split(", ")) == set(allowed.split(", "))
