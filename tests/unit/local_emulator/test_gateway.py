"""The HTTP gateway over real HTTP: event shapes, routing, result conversion, limits, errors."""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Iterator

import pytest
import requests

from local_emulator.descriptor import ProjectSpec
from local_emulator.gateway import Gateway, GatewayApp, parse_query
from local_emulator.invoker import Invoker

FUNCTION_URL_KEYS = {
    "body",
    "headers",
    "httpMethod",
    "path",
    "queryString",
    "headerParameters",
    "isBase64Encoded",
    "pathParameters",
    "queryStringParameters",
    "requestContext",
}


@pytest.fixture
def base_url(project: ProjectSpec, invoker: Invoker) -> Iterator[str]:
    gateway = Gateway(port=0)
    gateway.start(GatewayApp(project, invoker, on_cos_event=lambda n: ["seen:" + n["key"]]))
    yield gateway.url
    gateway.stop()


def test_function_url_event_matches_the_real_capture(base_url: str) -> None:
    response = requests.post(
        f"{base_url}/echo/items?a=1&a=2&b=x%20y&flag",
        data='{"name": "John"}',
        headers={"Content-Type": "application/json", "X-Custom-Header": "Value"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    event = response.json()["event"]
    request_id = response.json()["context"]["request_id"]

    assert set(event) == FUNCTION_URL_KEYS
    assert event["httpMethod"] == "POST"
    assert event["path"] == "/echo/items"
    assert event["body"] == '{"name": "John"}'
    assert event["isBase64Encoded"] is False
    assert event["queryString"] == {"a": ["1", "2"], "b": "x y", "flag": True}
    assert event["headerParameters"] == {}
    assert event["pathParameters"] == {}
    assert event["queryStringParameters"] == {}
    assert event["requestContext"] == {"sourceIp": "127.0.0.1"}
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-custom-header"] == "Value"
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == "16"
    assert headers["x-scf-request-id"] == request_id
    assert headers["x-scf-remote-addr"] == "127.0.0.1"
    assert response.headers["x-scf-request-id"] == request_id


def test_binary_request_bodies_arrive_base64(base_url: str) -> None:
    payload = bytes(range(256))
    response = requests.put(f"{base_url}/echo", data=payload, timeout=10)
    event = response.json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload
    assert event["httpMethod"] == "PUT"
    assert event["queryString"] == {}


def test_longest_prefix_wins_and_prefix_must_match_whole_segments(base_url: str) -> None:
    assert requests.get(f"{base_url}/api/v1/echo/x", timeout=10).json()["event"]["path"] == (
        "/api/v1/echo/x"
    )
    assert requests.get(f"{base_url}/echoes", timeout=10).status_code == 404


def test_integrated_response_sets_status_repeated_headers_and_decodes_base64(
    base_url: str,
) -> None:
    response = requests.get(f"{base_url}/binary", timeout=10)
    assert response.status_code == 201
    assert response.headers["content-type"] == "image/png"
    assert response.raw.headers.getlist("X-Multi") == ["one", "two"]
    assert response.content == bytes(range(256))


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/binary/dict", "application/json", {"hello": "world"}),
        ("/binary/list", "application/json", [1, 2, 3]),
        ("/binary/text", "text/plain; charset=utf-8", "plain words"),
    ],
)
def test_plain_return_values_follow_the_function_url_rules(
    base_url: str, path: str, content_type: str, body: object
) -> None:
    response = requests.get(base_url + path, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert (response.json() if isinstance(body, (dict, list)) else response.text) == body


def test_api_gateway_route_builds_the_legacy_event_with_path_parameters(base_url: str) -> None:
    response = requests.get(
        f"{base_url}/legacy/items/42?q=a&q=b", headers={"X-Trace": "t1"}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    event = response.json()
    context = event["requestContext"]
    assert context["serviceId"] == "service-local"
    assert context["path"] == "/legacy/items/{id}"
    assert context["httpMethod"] == "GET"
    assert context["stage"] == "release"
    assert context["sourceIp"] == "127.0.0.1"
    assert context["requestId"] == response.headers["x-scf-request-id"]
    assert event["path"] == "/legacy/items/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryString"] == {"q": ["a", "b"]}
    assert event["queryStringParameters"] == {}
    assert event["headerParameters"] == {}
    assert event["stageVariables"] == {"stage": "release"}
    assert event["headers"]["x-trace"] == "t1"


def test_api_gateway_routes_by_method(base_url: str) -> None:
    assert requests.post(f"{base_url}/legacy/items", data="x", timeout=10).status_code == 200
    assert requests.delete(f"{base_url}/legacy/items/1", timeout=10).status_code == 404


def test_bodies_over_6_mb_are_refused_before_invoking(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="local_emulator")
    response = requests.post(f"{base_url}/echo", data=b"x" * (6 * 1024 * 1024 + 1), timeout=30)
    assert response.status_code == 413
    assert response.json()["statusCode"] == 406
    assert not [r for r in caplog.records if r.name == "local_emulator.invoker"]
    assert requests.post(f"{base_url}/echo", data=b"x" * 1024, timeout=10).status_code == 200


def test_handler_error_is_a_502_without_the_stack_trace_which_is_logged(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="local_emulator")
    response = requests.get(f"{base_url}/fail", timeout=10)
    assert response.status_code == 502
    body = response.json()
    assert body == {
        "errorCode": -1,
        "errorMessage": "user code exception caught",
        "requestId": response.headers["x-scf-request-id"],
        "statusCode": 430,
    }
    logged = [json.loads(r.message) for r in caplog.records if r.name == "local_emulator.invoker"]
    assert any("ValueError: boom" in line.get("stack_trace", "") for line in logged)


def test_time_limit_is_a_504_and_the_function_recovers(base_url: str) -> None:
    response = requests.get(f"{base_url}/slow?s=5", timeout=10)
    assert response.status_code == 504
    assert response.json()["statusCode"] == 433
    assert requests.get(f"{base_url}/slow?s=0", timeout=10).status_code == 200


def test_unknown_paths_are_404_json(base_url: str) -> None:
    response = requests.get(f"{base_url}/nowhere", timeout=10)
    assert response.status_code == 404
    assert response.json()["path"] == "/nowhere"


def test_internal_endpoints(base_url: str) -> None:
    health = requests.get(f"{base_url}/_emulator/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert "echo" in health.json()["functions"]
    notified = requests.post(f"{base_url}/_emulator/cos-events", json={"key": "k"}, timeout=10)
    assert notified.status_code == 202
    assert notified.json() == {"functions": ["seen:k"]}
    assert (
        requests.post(f"{base_url}/_emulator/cos-events", data="{", timeout=10).status_code == 400
    )


def test_requests_sent_before_start_wait_for_the_app(
    project: ProjectSpec, invoker: Invoker
) -> None:
    gateway = Gateway(port=0)
    try:
        host, port = gateway.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5):
            pass  # the port is bound (and listening) before start()
        gateway.start(GatewayApp(project, invoker))
        assert requests.get(f"{gateway.url}/_emulator/health", timeout=10).status_code == 200
    finally:
        gateway.stop()


def test_query_parsing_rules() -> None:
    assert parse_query("") == {}
    assert parse_query("a=1&b=&c&a=2&a") == {"a": ["1", "2", True], "b": "", "c": True}
    assert parse_query("k%20x=v%2Fw+z") == {"k x": "v/w z"}
