"""A small method + path-template router (`/api/v1/items/{item_id}`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from hybrid.http.problem import MethodNotAllowedError, NotFoundError
from hybrid.http.request import Request
from hybrid.http.response import Response

ServicesT = TypeVar("ServicesT")

_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_SEGMENT_VALUE = r"[^/]+"


@dataclass(frozen=True)
class Call(Generic[ServicesT]):
    """One routed request: the request, its path parameters, the app's services and, once
    authenticated, the principal."""

    request: Request
    services: ServicesT
    params: dict[str, str] = field(default_factory=dict)
    principal: Any = None

    def with_principal(self, principal: Any) -> Call[ServicesT]:
        return replace(self, principal=principal)


RouteHandler = Callable[[Call[Any]], Response]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: RouteHandler
    pattern: re.Pattern[str]

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, template: str, handler: RouteHandler) -> None:
        regex = "".join(
            f"(?P<{part}>{_SEGMENT_VALUE})" if index % 2 else re.escape(part)
            for index, part in enumerate(_PARAM.split(template))
        )
        route = Route(method.upper(), template, handler, re.compile(regex))
        if any(r.method == route.method and r.template == template for r in self._routes):
            raise ValueError(f"duplicate route {method} {template}")
        self._routes.append(route)

    def route(self, method: str, template: str) -> Callable[[RouteHandler], RouteHandler]:
        def register(handler: RouteHandler) -> RouteHandler:
            self.add(method, template, handler)
            return handler

        return register

    def get(self, template: str) -> Callable[[RouteHandler], RouteHandler]:
        return self.route("GET", template)

    def post(self, template: str) -> Callable[[RouteHandler], RouteHandler]:
        return self.route("POST", template)

    def put(self, template: str) -> Callable[[RouteHandler], RouteHandler]:
        return self.route("PUT", template)

    def patch(self, template: str) -> Callable[[RouteHandler], RouteHandler]:
        return self.route("PATCH", template)

    def delete(self, template: str) -> Callable[[RouteHandler], RouteHandler]:
        return self.route("DELETE", template)

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a request: 404 for an unknown path, 405 for a known path."""
        path = path.rstrip("/") or "/"
        if any(ord(char) < 0x20 or char == "\x7f" for char in path):
            # No identifier holds control characters; and PostgreSQL text cannot hold NUL.
            raise NotFoundError("no such resource")
        allowed: list[str] = []
        for route in self._routes:
            params = route.match(path)
            if params is None:
                continue
            if route.method == method.upper():
                return route, params
            allowed.append(route.method)
        if allowed:
            raise MethodNotAllowedError(sorted(set(allowed)))
        raise NotFoundError(f"no route for {path}")

    def dispatch(self, request: Request, services: Any) -> Response:
        route, params = self.resolve(request.method, request.path)
        request = replace(request, path_params=params)
        return route.handler(Call(request=request, services=services, params=params))
