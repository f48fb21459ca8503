"""The packaged zips are self-contained: unpacked as SCF lays them out, each handler runs alone.

The packages are built once per session (py3.11 deps only: this machine runs 3.11), unpacked into
an SCF-like tree (`var/user` = the function zip, `opt` = the layers merged in bind order) and each
handler runs in a clean interpreter (`python -I -S`: no site-packages, no user paths, a minimal
environment) with `sys.path` = [var/user, opt] in front of the standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import typing
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from infra.descriptors import REPO_ROOT, discover_functions, load_serverless, scf_name
from infra.package import (
    INLINE_ZIP_LIMIT,
    MAX_LAYERS,
    MB,
    UNZIPPED_LIMIT,
    Artifact,
    PackageError,
    WorkDirs,
    build_common_layer,
    build_function,
    check_limits,
    deps_layer_name,
    resolve_deps,
)

pytestmark = pytest.mark.slow

RUNTIME = "3.11"
RUNTIME_TAG = "cpython-311-x86_64-linux-gnu"
REQUEST_ID = "5b0e0f7e-1d2c-4b8e-9f00-7e57c1ea2e01"
EVENTS = REPO_ROOT / "tests" / "events"
PACKAGE_COMMAND = (sys.executable, "-m", "infra.package")
CLEAN_PYTHON = (sys.executable, "-I", "-S", "-B", "-c")
LAYER_ORDER = ("hybrid-common.zip", f"{deps_layer_name(RUNTIME)}.zip")

# Runs inside the clean interpreter: argv = var/user, opt, request file, result file.
CHILD = r"""
import json, sys
user, opt, request_file, result_file = sys.argv[1:5]
sys.path[:0] = [user, opt]
request = json.loads(open(request_file, encoding="utf-8").read())
import index
result = index.main_handler(request["event"], request["context"])
origins = {}
for name in ("index", "hybrid", "pydantic", "pydantic_core", "pydantic_core._pydantic_core",
             "pydantic_settings", "structlog"):
    module = sys.modules.get(name)
    origins[name] = getattr(module, "__file__", None) if module else None
report = {
    "result": result,
    "origins": origins,
    "site_imported": "site" in sys.modules,
    "sys_path": sys.path,
}
with open(result_file, "w", encoding="utf-8") as handle:
    json.dump(report, handle)
"""


@dataclass(frozen=True)
class PackageRun:
    out: Path
    manifest: dict[str, Any]
    stdout: str

    def zip(self, name: str) -> Path:
        return self.out / name


@pytest.fixture(scope="session")
def package_run(tmp_path_factory: pytest.TempPathFactory) -> PackageRun:
    out = tmp_path_factory.mktemp("package")
    completed = subprocess.run(
        [*PACKAGE_COMMAND, "--out", str(out), "--runtime", RUNTIME],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return PackageRun(out, manifest, completed.stdout)


@pytest.fixture(scope="session")
def scf_opt(package_run: PackageRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`/opt`: the layers extracted in bind order (a later layer wins on a conflict)."""
    opt = tmp_path_factory.mktemp("scf") / "opt"
    for name in LAYER_ORDER:
        with zipfile.ZipFile(package_run.zip(name)) as archive:
            archive.extractall(opt)
    return opt


def _function_url_event(method: str, path: str) -> dict[str, Any]:
    """A Function URL event (PLATFORM-NOTES §2.2, real-capture shape) with no credentials."""
    fixture = EVENTS / "function_url.json"
    if fixture.is_file():
        event: dict[str, Any] = json.loads(fixture.read_text(encoding="utf-8"))
    else:
        event = {
            "headers": {"accept": "*/*", "user-agent": "curl/8.4.0"},
            "queryString": {},
            "headerParameters": {},
            "isBase64Encoded": False,
            "pathParameters": {},
            "queryStringParameters": {},
            "requestContext": {"sourceIp": "203.0.113.7"},
        }
    headers = {
        k: v
        for k, v in dict(event.get("headers") or {}).items()
        if k.lower() not in {"authorization", "content-type", "content-length"}
    }
    headers["x-scf-request-id"] = REQUEST_ID
    return {**event, "httpMethod": method, "path": path, "body": "", "headers": headers}


def _context(function_name: str) -> dict[str, Any]:
    fixture = EVENTS / "context.json"
    context: dict[str, Any] = (
        json.loads(fixture.read_text(encoding="utf-8"))
        if fixture.is_file()
        else {"memory_limit_in_mb": 256, "time_limit_in_ms": 15000, "namespace": "default"}
    )
    return {**context, "request_id": REQUEST_ID, "function_name": function_name}


def _placeholder(env_name: str, annotation: Any) -> str | None:
    """A harmless value a required setting accepts; None for a type it cannot be given."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return str(args[0])
    if annotation is bool:
        return "false"
    if annotation in (int, float):
        return "1"
    if env_name.endswith("DATABASE_URL"):
        return "postgresql://probe:probe@127.0.0.1:9/probe"  # discard port: nothing answers
    if env_name.endswith("REDIS_URL"):
        return "redis://127.0.0.1:9/0"
    if env_name.endswith("_URL"):
        return "http://127.0.0.1:9/"
    if annotation in (str, SecretStr) or SecretStr in args or str in args:
        return base64.b64encode(os.urandom(32)).decode()
    return None


def _settings_environment(settings_cls: Any) -> dict[str, str]:
    """Placeholders for every required setting, so the handler starts without real services."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    env: dict[str, str] = {}
    for name, field in settings_cls.model_fields.items():
        if not field.is_required():
            continue
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        env_name = str(choices[0] if choices else alias or f"{prefix}{name}").upper()
        value = _placeholder(env_name, field.annotation)
        assert value is not None, f"no placeholder for {env_name}: {field.annotation!r}"
        env[env_name] = value
    if "app_env" in settings_cls.model_fields:
        env["APP_ENV"] = "test"
    return env


def _scf_environment(function_name: str, user: Path, home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(home),
        "USER_CODE_ROOT": f"{user}/",
        "SCF_FUNCTIONNAME": function_name,
        "SCF_FUNCTIONVERSION": "$LATEST",
        "SCF_NAMESPACE": "default",
        "TENCENTCLOUD_REGION": "ap-guangzhou",
        "TENCENTCLOUD_RUNENV": "SCF",
    }


def _invoke_clean(
    function_zip: Path,
    opt: Path,
    work: Path,
    event: Mapping[str, Any],
    context: Mapping[str, Any],
    env: Mapping[str, str],
    python: tuple[str, ...] = CLEAN_PYTHON,
) -> dict[str, Any]:
    user = work / "var" / "user"
    with zipfile.ZipFile(function_zip) as archive:
        archive.extractall(user)
    home = work / "tmp"
    home.mkdir()
    request_file, result_file = work / "request.json", work / "result.json"
    request_file.write_text(json.dumps({"event": event, "context": context}), encoding="utf-8")
    completed = subprocess.run(
        [*python, CHILD, str(user), str(opt), str(request_file), str(result_file)],
        env={**_scf_environment(str(context["function_name"]), user, home), **env},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
    assert not report["site_imported"]
    stdlib = [p for p in report["sys_path"][2:] if not p.startswith((str(user), str(opt)))]
    assert report["sys_path"][:2] == [str(user), str(opt)]
    assert not [p for p in stdlib if "site-packages" in p or "dist-packages" in p]
    for module, origin in report["origins"].items():
        assert origin is None or origin.startswith((str(user), str(opt))), (module, origin)
    return report


def _headers(result: Mapping[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in dict(result.get("headers") or {}).items()}


def _assert_unauthorized_problem(result: Mapping[str, Any]) -> None:
    assert result["statusCode"] == 401, result
    headers = _headers(result)
    assert headers["content-type"].startswith("application/problem+json"), headers
    assert headers.get("x-request-id"), headers
    body = result["body"]
    if result.get("isBase64Encoded") in (True, "true"):
        body = base64.b64decode(body).decode()
    problem = json.loads(body)
    assert problem["status"] == 401


def _probe_path(http_paths: tuple[str, ...]) -> tuple[str, str]:
    """A credentialed operation the function serves, from openapi.yaml; GET preferred.

    Routing comes before authentication, so the probe must name a route that exists.
    """
    spec_file = REPO_ROOT / "openapi.yaml"
    candidates: list[tuple[int, int, str, str]] = []
    if spec_file.is_file():
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
        for path, operations in (spec.get("paths") or {}).items():
            if not any(path == p or path.startswith(p.rstrip("/") + "/") for p in http_paths):
                continue
            for method, operation in (operations or {}).items():
                if not isinstance(operation, dict) or "401" not in (
                    operation.get("responses") or {}
                ):
                    continue
                candidates.append(
                    (
                        method != "get",
                        path.count("{"),
                        method.upper(),
                        re.sub(r"\{[^}]+\}", "probe", path),
                    )
                )
    if candidates:
        _, _, method, path = min(candidates)
        return method, path
    return "GET", http_paths[0]


HTTP_FUNCTIONS = {
    spec.folder: spec.http_paths
    for spec in load_serverless().functions.values()
    if spec.http_paths and spec.folder in discover_functions()
}


@pytest.mark.parametrize("folder", sorted(HTTP_FUNCTIONS))
def test_packaged_http_function_answers_401_problem_without_site_packages_or_database(
    folder: str, package_run: PackageRun, scf_opt: Path, tmp_path: Path
) -> None:
    settings_cls = import_module(f"functions.{folder}.index").SETTINGS
    method, path = _probe_path(HTTP_FUNCTIONS[folder])
    report = _invoke_clean(
        package_run.zip(f"{scf_name(folder)}.zip"),
        scf_opt,
        tmp_path,
        _function_url_event(method, path),
        _context(scf_name(folder)),
        _settings_environment(settings_cls),
    )
    _assert_unauthorized_problem(report["result"])


@pytest.fixture(scope="session")
def scf_opt_py310(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """SCF's Python 3.10: the interpreter, the py310 zips and their /opt (skips without 3.10)."""
    from infra.package import find_interpreter

    interpreter = find_interpreter("3.10")
    if interpreter is None:
        pytest.skip("no CPython 3.10 on this machine to run the SCF runtime's layer with")
    out = tmp_path_factory.mktemp("package310")
    completed = subprocess.run(
        [*PACKAGE_COMMAND, "--out", str(out), "--runtime", "3.10"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    opt = tmp_path_factory.mktemp("scf310") / "opt"
    for name in ("hybrid-common.zip", "hybrid-deps-py310.zip"):
        with zipfile.ZipFile(out / name) as archive:
            archive.extractall(opt)
    return str(interpreter), out, opt


@pytest.mark.parametrize("folder", sorted(HTTP_FUNCTIONS))
def test_packaged_http_function_runs_on_scf_python_310(
    folder: str, scf_opt_py310: tuple[str, Path, Path], tmp_path: Path
) -> None:
    """SCF offers Python up to 3.10: the same code and the py310 deps layer work there."""
    interpreter, out, opt = scf_opt_py310
    settings_cls = import_module(f"functions.{folder}.index").SETTINGS
    method, path = _probe_path(HTTP_FUNCTIONS[folder])
    report = _invoke_clean(
        out / f"{scf_name(folder)}.zip",
        opt,
        tmp_path,
        _function_url_event(method, path),
        _context(scf_name(folder)),
        _settings_environment(settings_cls),
        python=(interpreter, "-I", "-S", "-B", "-c"),
    )
    _assert_unauthorized_problem(report["result"])
    assert report["origins"]["pydantic_core._pydantic_core"].endswith(
        "_pydantic_core.cpython-310-x86_64-linux-gnu.so"
    )


PROBE_FUNCTION = '''
"""A stand-in function: what a real one needs from the layers, and nothing from elsewhere."""

from __future__ import annotations

import json
from typing import Any

import pydantic_core
import structlog
from hybrid.config import FunctionSettings

SETTINGS = FunctionSettings


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    settings = SETTINGS()
    structlog.get_logger().info("probe", app_env=settings.app_env)
    request_id = str(context["request_id"])
    headers = {str(k).lower() for k in event.get("headers") or {}}
    if "authorization" not in headers:
        problem = {"type": "about:blank", "title": "Unauthorized", "status": 401,
                   "detail": pydantic_core.__version__, "request_id": request_id}
        return {"isBase64Encoded": False, "statusCode": 401,
                "headers": {"Content-Type": "application/problem+json", "X-Request-Id": request_id},
                "body": json.dumps(problem)}
    return {"statusCode": 204, "headers": {"X-Request-Id": request_id}, "body": ""}
'''


def _sources(names: list[str]) -> list[str]:
    return [name for name in names if "__pycache__/" not in name]


def assert_fresh_bytecode_only(archive: zipfile.ZipFile) -> None:
    """Bytecode in a zip is what the packager compiled: unchecked-hash, next to its source,
    never a stale file copied from the working tree."""
    names = set(archive.namelist())
    for name in names:
        if not name.endswith((".pyc", ".pyo")):
            continue
        folder, _, filename = name.rpartition("__pycache__/")
        assert filename.count(".") == 2, name
        assert f"{folder}{filename.split('.')[0]}.py" in names, name
        header = archive.read(name)[:8]
        assert int.from_bytes(header[4:8], "little") == 0b01, name


def _probe_functions_dir(root: Path) -> Path:
    folder = root / "functions" / "probe_fn"
    folder.mkdir(parents=True)
    (folder / "index.py").write_text(PROBE_FUNCTION, encoding="utf-8")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "index.cpython-311.pyc").write_bytes(b"stale")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_probe.py").write_text("", encoding="utf-8")
    return root / "functions"


def test_a_stand_in_function_runs_from_the_layers_alone(
    package_run: PackageRun, scf_opt: Path, tmp_path: Path
) -> None:
    functions_dir = _probe_functions_dir(tmp_path / "src")
    out = tmp_path / "out"
    completed = subprocess.run(
        [*PACKAGE_COMMAND, "--out", str(out), "--functions-only", "--functions-dir", functions_dir],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    function_zip = out / "probe-fn.zip"
    archive = zipfile.ZipFile(function_zip)
    assert _sources(archive.namelist()) == ["index.py"]
    assert_fresh_bytecode_only(archive)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    report = _invoke_clean(
        function_zip,
        scf_opt,
        run_dir,
        _function_url_event("GET", "/probe"),
        _context("probe-fn"),
        {"APP_ENV": "test"},
    )
    _assert_unauthorized_problem(report["result"])
    native = report["origins"]["pydantic_core._pydantic_core"]
    assert native.endswith(f"_pydantic_core.{RUNTIME_TAG}.so")
    assert report["origins"]["hybrid"].startswith(str(scf_opt / "hybrid"))


def test_deps_layer_holds_manylinux_cp311_binaries_at_the_zip_root(
    package_run: PackageRun,
) -> None:
    with zipfile.ZipFile(package_run.zip(f"{deps_layer_name(RUNTIME)}.zip")) as archive:
        names = archive.namelist()
        wheel = archive.read(
            next(n for n in names if re.fullmatch(r"pydantic_core-[^/]+\.dist-info/WHEEL", n))
        ).decode()
        assert_fresh_bytecode_only(archive)
    assert f"pydantic_core/_pydantic_core.{RUNTIME_TAG}.so" in names
    assert re.search(r"^Tag: cp311-cp311-manylinux[\w.]*_x86_64$", wheel, re.MULTILINE), wheel
    assert {"pydantic/__init__.py", "structlog/__init__.py", "pg8000/__init__.py"} <= set(names)
    assert "pydantic/__pycache__/__init__.cpython-311.pyc" in names
    assert not [n for n in names if n.startswith("bin/")]
    native = [n for n in names if n.endswith(".so")]
    assert native
    assert not [n for n in native if "cpython-3" in n and RUNTIME_TAG not in n], native


def test_common_layer_holds_the_hybrid_package_at_the_root_without_caches_or_tests(
    package_run: PackageRun,
) -> None:
    archive = zipfile.ZipFile(package_run.zip("hybrid-common.zip"))
    names = archive.namelist()
    assert "hybrid/__init__.py" in names
    assert all(n.startswith("hybrid/") for n in names)
    assert_fresh_bytecode_only(archive)
    assert not [n for n in names if "/tests/" in n or n.rsplit("/", 1)[-1].startswith("test_")]


def test_every_function_folder_becomes_a_zip_with_its_files_at_the_root(
    package_run: PackageRun,
) -> None:
    for folder in discover_functions():
        archive = zipfile.ZipFile(package_run.zip(f"{scf_name(folder)}.zip"))
        assert "index.py" in archive.namelist()
        assert_fresh_bytecode_only(archive)


def test_the_build_prints_a_size_table_and_records_it_in_the_manifest(
    package_run: PackageRun,
) -> None:
    names = {a["name"] for a in package_run.manifest["artifacts"]}
    expected = set(LAYER_ORDER) | {f"{scf_name(f)}.zip" for f in discover_functions()}
    assert expected <= names
    for name in expected:
        assert name in package_run.stdout
    assert "code+layers unzipped MB" in package_run.stdout
    assert not [f for f in package_run.manifest["findings"] if f["level"] == "error"]
    for footprint in package_run.manifest["footprints"]:
        assert footprint["unzipped_bytes"] <= UNZIPPED_LIMIT
        assert footprint["layers"] <= MAX_LAYERS


def test_the_same_tree_gives_byte_identical_zips(tmp_path: Path) -> None:
    functions_dir = _probe_functions_dir(tmp_path / "src")
    here = [Path(sys.executable)]
    first = build_common_layer(REPO_ROOT, tmp_path / "a", WorkDirs(tmp_path / "wa"), here)
    second = build_common_layer(REPO_ROOT, tmp_path / "b", WorkDirs(tmp_path / "wb"), here)
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    one = build_function(
        functions_dir / "probe_fn", tmp_path / "a", WorkDirs(tmp_path / "wa"), here
    )
    os.utime(functions_dir / "probe_fn" / "index.py", (1_000_000_000, 1_000_000_000))
    two = build_function(
        functions_dir / "probe_fn", tmp_path / "b", WorkDirs(tmp_path / "wb"), here
    )
    assert one.sha256 == two.sha256
    info = zipfile.ZipFile(one.path).infolist()[0]
    assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_zips_ship_bytecode_for_the_runtime_so_cold_starts_do_not_compile(
    tmp_path: Path,
) -> None:
    """SCF mounts code read-only: without shipped .pyc every cold start compiles from source."""
    tag = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"
    here = [Path(sys.executable)]
    common = build_common_layer(REPO_ROOT, tmp_path / "out", WorkDirs(tmp_path / "w"), here)
    names = set(zipfile.ZipFile(common.path).namelist())
    assert f"hybrid/__pycache__/handler.{tag}.pyc" in names
    assert "hybrid/handler.py" in names
    pyc = zipfile.ZipFile(common.path).read(f"hybrid/__pycache__/handler.{tag}.pyc")
    # PEP 552 flags: bit 0 = hash-based, bit 1 = check_source; unchecked-hash is 0b01.
    assert int.from_bytes(pyc[4:8], "little") == 0b01
    function = build_function(
        REPO_ROOT / "functions" / "admin_api", tmp_path / "out", WorkDirs(tmp_path / "w"), here
    )
    assert f"__pycache__/index.{tag}.pyc" in zipfile.ZipFile(function.path).namelist()


def test_a_function_without_index_py_is_refused(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    with pytest.raises(PackageError, match=r"no index\.py"):
        build_function(tmp_path / "broken", tmp_path / "out", WorkDirs(tmp_path / "w"))


def test_py310_deps_resolve_to_cp310_manylinux_x86_64_wheels() -> None:
    """SCF runs Python 3.10: its deps layer must take cp310 (or abi3/pure) manylinux wheels."""
    requirements = REPO_ROOT / "layers" / "deps" / "requirements.txt"
    failure = None
    try:
        resolved = resolve_deps("3.10", requirements, WorkDirs(REPO_ROOT / "build"))
    except PackageError as exc:
        failure = str(exc)
    if failure is not None:
        pytest.fail(
            f"layers/deps/{requirements.name} does not resolve for Python 3.10 (SCF); every pin "
            f"must support 3.10 and 3.11 (pip evaluates markers for this interpreter):\n{failure}"
        )
    names = {d.name.lower().replace("_", "-") for d in resolved}
    assert {"pydantic-core", "pydantic", "structlog"} <= names
    for dist in resolved:
        tags = dist.wheel_tags
        assert tags is not None, f"{dist.name} would come from {dist.filename}, not a wheel"
        python, abi, platform = tags
        if abi == "none":
            assert platform == "any", dist
            continue
        assert python == "cp310" or abi == "abi3", dist
        assert "manylinux" in platform, dist
        assert platform.endswith("x86_64"), dist
    core = next(d for d in resolved if d.name.lower().replace("_", "-") == "pydantic-core")
    assert core.wheel_tags is not None
    assert core.wheel_tags[:2] == ("cp310", "cp310")


def _artifact(name: str, kind: str, zipped_mb: float, unzipped_mb: float) -> Artifact:
    return Artifact(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        path=Path(name),
        files=1,
        zipped_bytes=int(zipped_mb * MB),
        unzipped_bytes=int(unzipped_mb * MB),
        sha256="0" * 64,
    )


def test_limits_flag_oversized_code_and_too_many_layers_and_warn_on_large_inline_zips() -> None:
    fn = _artifact("big-fn.zip", "function", 25, 300)
    small = _artifact("small-fn.zip", "function", 0.1, 0.2)
    common = _artifact("hybrid-common.zip", "layer", 0.1, 1)
    deps = _artifact("hybrid-deps-py310.zip", "layer", 60, 250)
    footprints, findings = check_limits(
        [fn, small],
        {"3.10": [common, deps]},
        {"big-fn": 6, "small-fn": 2},
        [fn, small, common, deps],
    )
    by_function = {f.function: f for f in footprints}
    assert by_function["big-fn"].unzipped_bytes == int(300 * MB) + int(1 * MB) + int(250 * MB)
    errors = {(f.subject, f.message.split(",")[0]) for f in findings if f.level == "error"}
    assert any(s == "big-fn (py3.10)" for s, _ in errors)
    assert any(s == "big-fn" and "6 layers" in m for s, m in errors)
    assert not [f for f in findings if f.subject.startswith("small-fn")]
    warned = {f.subject for f in findings if f.level == "warning"}
    assert warned == {"big-fn.zip", "hybrid-deps-py310.zip"}
    assert INLINE_ZIP_LIMIT == 20 * MB
