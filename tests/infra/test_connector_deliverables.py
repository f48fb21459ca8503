"""What ships to customers: the connector's image copies only the stdlib-only modules of the
shared layer it imports (and every one it imports, transitively), its other imports are the
standard library or its requirements, and the compose file and tunnel templates parse."""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR = ROOT / "connector"
LAYER = ROOT / "layers" / "common"
DOCKERFILE = CONNECTOR / "Dockerfile"
ALLOWED = {
    "layers/common/hybrid/__init__.py",
    "layers/common/hybrid/errors.py",
    "layers/common/hybrid/signing.py",
    "layers/common/hybrid/masking/",
    "layers/common/hybrid/connectors/__init__.py",
    "layers/common/hybrid/connectors/protocol.py",
}
# Import name → distribution of connector/requirements.txt (plus zstandard, installed apart).
THIRD_PARTY = {
    "sqlglot": "sqlglot",
    "pg8000": "pg8000",
    "pymysql": "PyMySQL",
    "yaml": "pyyaml",
    "zstandard": "zstandard",
}


def dockerfile_instructions() -> list[list[str]]:
    """Instructions as token lists, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [
        shlex.split(line)
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def copied_layer_paths() -> set[str]:
    copied: set[str] = set()
    for tokens in dockerfile_instructions():
        if tokens[0].upper() not in ("COPY", "ADD"):
            continue
        sources = [t for t in tokens[1:-1] if not t.startswith("--")]
        copied |= {source for source in sources if source.startswith("layers/")}
    return copied


def is_copied(path: Path, copied: set[str]) -> bool:
    relative = path.relative_to(ROOT).as_posix()
    return any(
        relative == entry or (entry.endswith("/") and relative.startswith(entry))
        for entry in copied
    )


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from hybrid.masking import egress` may name a submodule.
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def module_file(name: str) -> Path | None:
    base = LAYER.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def connector_files() -> list[Path]:
    return sorted(CONNECTOR.rglob("*.py"))


def layer_closure() -> dict[str, Path]:
    """Every hybrid module the connector needs: its imports, their imports, and the packages
    they live in."""
    pending = [name for path in connector_files() for name in imports_of(path)]
    found: dict[str, Path] = {}
    while pending:
        name = pending.pop()
        if name.split(".")[0] != "hybrid" or name in found:
            continue
        file = module_file(name)
        if file is None:
            continue  # an attribute imported from a module, not a module
        found[name] = file
        parts = name.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts))]
        pending += list(imports_of(file))
    return found


def test_the_image_copies_only_the_allowed_layer_modules() -> None:
    assert copied_layer_paths() == ALLOWED


def test_every_layer_module_the_connector_imports_is_copied() -> None:
    closure = layer_closure()
    assert {"hybrid.signing", "hybrid.masking", "hybrid.connectors.protocol"} <= set(closure)
    missing = sorted(name for name, file in closure.items() if not is_copied(file, ALLOWED))
    assert missing == [], f"imported by the connector but not in its image: {missing}"
    # And only the four modules the brief allows (with their packages and submodules).
    allowed_roots = ("hybrid.signing", "hybrid.masking", "hybrid.connectors", "hybrid.errors")
    for name in closure:
        assert name == "hybrid" or name.startswith(allowed_roots), name
    assert "hybrid.connectors.registry" not in closure


def test_the_shipped_code_imports_only_the_stdlib_and_its_requirements() -> None:
    requirements = {
        re.split(r"[=<>\[ ]", line)[0].strip().lower()
        for line in (CONNECTOR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    shipped = connector_files() + list(layer_closure().values())
    for path in shipped:
        for name in imports_of(path):
            root = name.split(".")[0]
            if root in ("connector", "hybrid") or root in sys.stdlib_module_names:
                continue
            distribution = THIRD_PARTY.get(root)
            assert distribution is not None, f"{path.relative_to(ROOT)} imports {name}"
            if distribution != "zstandard":
                assert distribution.lower() in requirements, distribution
    # The layer modules stay standard library only (zstandard is imported lazily).
    for path in layer_closure().values():
        roots = {name.split(".")[0] for name in imports_of(path)}
        assert roots - set(sys.stdlib_module_names) - {"hybrid", "zstandard"} == set(), path


def test_the_image_runs_as_a_user_with_a_volume_and_a_health_check() -> None:
    instructions = {tokens[0].upper(): tokens for tokens in dockerfile_instructions()}
    assert instructions["FROM"][1] == "python:3.11-slim"
    assert instructions["USER"][1] not in ("root", "0")
    assert "/var/lib/connector" in " ".join(instructions["VOLUME"])
    assert "HEALTHCHECK" in instructions
    text = DOCKERFILE.read_text()
    assert 'CMD ["python", "-m", "connector", "doctor", "--quick"]' in text
    assert "connector/requirements.txt" in text
    assert "zstandard" in text
    ignore = (CONNECTOR / "Dockerfile.dockerignore").read_text().splitlines()
    for entry in ALLOWED:
        assert f"!{entry}" in ignore


def test_the_compose_file_parses_and_builds_the_dockerfile() -> None:
    compose = yaml.safe_load((CONNECTOR / "docker-compose.yml").read_text(encoding="utf-8"))
    connector = compose["services"]["connector"]
    context = (CONNECTOR / connector["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / connector["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert any(v.endswith(":/var/lib/connector") for v in connector["volumes"])
    frpc = compose["services"]["frpc"]
    assert frpc["profiles"] == ["tunnel"]
    config_mount = next(v for v in frpc["volumes"] if v.endswith("frpc.toml:ro"))
    assert (CONNECTOR / config_mount.split(":")[0]).resolve().is_file()


def render(path: Path, values: dict[str, str]) -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    text = path.read_text(encoding="utf-8")
    rendered = re.sub(r"\{\{ \.Envs\.([A-Z_]+) \}\}", lambda m: values[m.group(1)], text)
    return tomllib.loads(rendered)


def test_the_frp_templates_force_tls_token_and_one_port() -> None:
    values = {
        "FRP_SERVER_ADDR": "frp.example.com",
        "FRP_SERVER_PORT": "7000",
        "FRP_TOKEN": "t",
        "FRP_PROXY_NAME": "con_1",
        "FRP_REMOTE_PORT": "20001",
        "FRP_PROXY_BIND": "10.0.0.5",
        "FRP_PORT_FIRST": "20000",
        "FRP_PORT_LAST": "20999",
    }
    client = render(ROOT / "infra" / "tunnel" / "frp" / "frpc.toml", values)
    assert client["auth"] == {"method": "token", "token": "t"}
    assert client["transport"]["tls"]["enable"] is True
    (proxy,) = client["proxies"]
    assert (proxy["type"], proxy["localPort"]) == ("tcp", 8443)
    server = render(ROOT / "infra" / "tunnel" / "frp" / "frps.toml", values)
    assert server["transport"]["tls"]["force"] is True
    assert server["auth"]["method"] == "token"
    assert server["proxyBindAddr"] == "10.0.0.5"
    assert server["maxPortsPerClient"] == 1
    zerotier = (ROOT / "infra" / "tunnel" / "zerotier" / "README.md").read_text()
    assert "dport 8443" in zerotier
    assert "ipsrc <cloud_ip>/32" in zerotier


def test_the_connector_imports_with_only_what_the_image_copies(tmp_path: Path) -> None:
    """The image's /app laid out from the Dockerfile's COPY lines: every connector module
    imports, and the CLI answers, without the rest of the repository."""
    app, layer = tmp_path / "app", tmp_path / "app" / "layer"
    for tokens in dockerfile_instructions():
        if tokens[0].upper() != "COPY":
            continue
        *sources, destination = tokens[1:]
        if not destination.startswith("/app/") or destination == "/app/requirements.txt":
            continue
        target = tmp_path / destination.lstrip("/")
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)
    modules = sorted(
        "connector." + ".".join(p.relative_to(app / "connector").with_suffix("").parts)
        for p in (app / "connector").rglob("*.py")
        if p.name != "__init__.py"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(layer), "PYTHONNOUSERSITE": "1"}
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
    result = subprocess.run(
        [sys.executable, "-c", code, *modules],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "connector", "--help"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "doctor" in result.stdout
    assert not (layer / "hybrid" / "db.py").exists()
