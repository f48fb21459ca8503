"""openapi.yaml describes every HTTP route that exists, and nothing that does not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "post", "put", "patch", "delete"}


def _spec() -> dict:
    return yaml.safe_load((ROOT / "openapi.yaml").read_text())


def _routers() -> dict[str, object]:
    routers = {}
    for index in sorted((ROOT / "functions").glob("*/index.py")):
        spec = importlib.util.spec_from_file_location(f"openapi_{index.parent.name}", index)
        assert spec
        assert spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        router = module._function.router
        if router is not None:
            routers[index.parent.name] = router
    return routers


def test_every_route_is_in_the_spec_and_every_operation_is_routed() -> None:
    routed = {(route.method, route.template) for router in _routers().values() for route in router}
    documented = {
        (method.upper(), path)
        for path, item in _spec()["paths"].items()
        for method in item
        if method in METHODS
    }
    assert routed - documented == set(), "routes missing from openapi.yaml"
    assert documented - routed == set(), "openapi.yaml documents routes that do not exist"


def test_documented_scopes_match_the_route_guards() -> None:
    spec = _spec()
    for router in _routers().values():
        for route in router:
            operation = spec["paths"][route.template][route.method.lower()]
            guard_scopes = list(getattr(route.handler, "required_scopes", ()))
            if getattr(route.handler, "operator_only", False):
                guard_scopes = ["operator"]
            if getattr(route.handler, "internal_only", False):
                guard_scopes = ["internal"]
                if getattr(route.handler, "operator_allowed", False):
                    guard_scopes = ["internal", "operator"]
            assert operation.get("x-required-scopes") == guard_scopes, route.template
            any_of = bool(getattr(route.handler, "any_of", False))
            assert bool(operation.get("x-scopes-any-of")) == any_of, route.template


def test_every_operation_documents_problem_responses_and_request_id() -> None:
    for path, item in _spec()["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            codes = set(operation["responses"])
            if operation.get("x-required-scopes") != []:
                assert "401" in codes, (method, path)
            assert "503" in codes, (method, path)
            success = [c for c in codes if c.startswith("2")]
            assert success, (method, path)
            for code in success:
                assert "X-Request-Id" in operation["responses"][code].get("headers", {})
