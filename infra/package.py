"""Build the deployable zips: the common layer, one deps layer per runtime, one zip per function.

    python -m infra.package --out build/package [--runtime 3.10 --runtime 3.11] [--functions-only]

- `hybrid-common.zip`: `layers/common/hybrid/**` at the zip root (SCF extracts layers under `/opt`,
  which is on PYTHONPATH), without caches or tests.
- `hybrid-deps-py310.zip` / `hybrid-deps-py311.zip`: `layers/deps/requirements.txt` installed with
  wheels for the DEPLOYED runtime (CPython, manylinux2014 x86_64), never this machine's. A
  requirement published only as an sdist is built here into a wheel with no compiler available
  and must come out pure Python (`none-any`), so no host-compiled code can reach the layer.
  One requirements file serves every runtime, and pip evaluates its environment markers for the
  interpreter running pip, not for `--python-version`: each pin must support every deployed
  runtime (SCF 3.10 and CloudBase 3.11).
- `<function-name>.zip`: the function folder's files at the zip root.

Every zip ships bytecode (`__pycache__/*.cpython-3XX.pyc`, unchecked-hash, so extraction times do
not invalidate it) compiled by an interpreter of each target version found on this machine
(`python3.10`, `python3.11`, also under pyenv): SCF mounts code and layers read-only, so without
shipped bytecode every cold start compiles every module from source (≈ 4× slower imports). A
target with no interpreter here ships source only, with a warning.

Zips are deterministic (fixed timestamps and modes, sorted entries): the same tree gives the same
bytes. Each function's code plus its layers is checked against the SCF limits and a size table is
printed; `manifest.json` in the output directory holds the same figures. The pip cache, the
wheelhouse of pure wheels built from sdists and the staged deps trees live under `build/` and are
reused between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any, Literal

from infra.descriptors import (
    REPO_ROOT,
    DescriptorError,
    discover_functions,
    function_folders,
    load_cloudbase,
    load_serverless,
    scf_name,
)

COMMON_LAYER = "hybrid-common"
DEPS_LAYER = "hybrid-deps"
COMMON_PACKAGE = Path("layers/common/hybrid")
DEPS_REQUIREMENTS = Path("layers/deps/requirements.txt")
DEFAULT_RUNTIMES = ("3.10", "3.11")
TARGET_PLATFORM = "manylinux2014_x86_64"
TARGET_IMPLEMENTATION = "cp"

MB = 1024 * 1024
UNZIPPED_LIMIT = 500 * MB  # a function version's code plus its bound layers, uncompressed
MAX_LAYERS = 5  # layer versions bound to one function version
INLINE_ZIP_LIMIT = 20 * MB  # base64 ZipFile upload; larger code must go through COS

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_SKIPPED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_TEST_DIRS = frozenset({"tests", "test"})
_NATIVE_SUFFIXES = (".so", ".pyd", ".dylib")
_RUNTIME = re.compile(r"^3\.\d{1,2}$")

Level = Literal["error", "warning"]


class PackageError(Exception):
    """A package cannot be built as asked."""


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: Literal["layer", "function"]
    path: Path
    files: int
    zipped_bytes: int
    unzipped_bytes: int
    sha256: str


@dataclass(frozen=True)
class Footprint:
    """What one function version occupies on one runtime: its code plus its bound layers."""

    function: str
    runtime: str
    layers: int
    unzipped_bytes: int


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str
    message: str


@dataclass(frozen=True)
class ResolvedDist:
    """One distribution the deps install would take, and the file it would take it from."""

    name: str
    version: str
    filename: str

    @property
    def wheel_tags(self) -> tuple[str, str, str] | None:
        """(python, abi, platform) tags of a wheel; None for anything else."""
        if not self.filename.endswith(".whl"):
            return None
        parts = self.filename[: -len(".whl")].split("-")
        return (parts[-3], parts[-2], parts[-1]) if len(parts) >= 5 else None


@dataclass(frozen=True)
class WorkDirs:
    """Caches kept between runs (under `build/` by default)."""

    root: Path

    @property
    def pip_cache(self) -> Path:
        return self.root / "pip-cache"

    @property
    def wheelhouse(self) -> Path:
        return self.root / "wheelhouse"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def reports(self) -> Path:
        return self.root / "reports"


@dataclass(frozen=True)
class BuildResult:
    artifacts: tuple[Artifact, ...]
    footprints: tuple[Footprint, ...]
    findings: tuple[Finding, ...]
    source_built: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)


def runtime_tag(runtime: str) -> str:
    """`3.10` → `py310`."""
    if not _RUNTIME.match(runtime):
        raise PackageError(f"runtime must look like 3.10, got {runtime!r}")
    return "py" + runtime.replace(".", "")


def deps_layer_name(runtime: str) -> str:
    return f"{DEPS_LAYER}-{runtime_tag(runtime)}"


def pip_target_args(runtime: str) -> list[str]:
    """The pip options that select wheels for the deployed runtime instead of this machine."""
    runtime_tag(runtime)
    return [
        "--platform",
        TARGET_PLATFORM,
        "--implementation",
        TARGET_IMPLEMENTATION,
        "--python-version",
        runtime,
        "--only-binary=:all:",
    ]


# -- zips -------------------------------------------------------------------------------------


def tree_entries(
    root: Path, *, prefix: str = "", skip_tests: bool = False, bytecode: bool = False
) -> list[tuple[str, Path]]:
    """(archive name, file) for every file under `root`, minus caches (and tests if asked);
    with `bytecode`, the `__pycache__` folders that `compile_tree` wrote are kept."""
    skipped_dirs = _SKIPPED_DIRS - {"__pycache__"} if bytecode else _SKIPPED_DIRS
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in skipped_dirs and not (skip_tests and d in _TEST_DIRS)
        )
        for filename in sorted(filenames):
            if filename.endswith(_SKIPPED_SUFFIXES) and not (
                bytecode and Path(dirpath).name == "__pycache__"
            ):
                continue
            if skip_tests and (
                filename == "conftest.py"
                or (filename.startswith("test_") and filename.endswith(".py"))
            ):
                continue
            path = Path(dirpath) / filename
            entries.append((prefix + path.relative_to(root).as_posix(), path))
    return entries


def write_zip(
    entries: Iterable[tuple[str, Path]], dest: Path, kind: Literal["layer", "function"]
) -> Artifact:
    """Write a deterministic zip: sorted entries, fixed timestamp, normalised modes."""
    ordered = sorted(entries)
    names = [name for name, _ in ordered]
    if len(set(names)) != len(names):
        raise PackageError(f"{dest.name}: duplicate entries")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    unzipped = 0
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in ordered:
            data = source.read_bytes()
            unzipped += len(data)
            info = zipfile.ZipInfo(name, ZIP_TIMESTAMP)
            info.create_system = 3  # Unix, so that the mode bits below are honoured
            mode = 0o755 if source.stat().st_mode & 0o111 else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=6)
    partial.replace(dest)
    return Artifact(
        name=dest.name,
        kind=kind,
        path=dest,
        files=len(ordered),
        zipped_bytes=dest.stat().st_size,
        unzipped_bytes=unzipped,
        sha256=hashlib.sha256(dest.read_bytes()).hexdigest(),
    )


def build_common_layer(
    root: Path, out: Path, work: WorkDirs, interpreters: Sequence[Path] = ()
) -> Artifact:
    package = root / COMMON_PACKAGE
    if not (package / "__init__.py").is_file():
        raise PackageError(f"{package} is not a package")
    staged = stage_tree(package, work.staging / COMMON_LAYER / package.name)
    compile_tree(staged.parent, interpreters, mount="/opt")
    entries = tree_entries(staged, prefix=f"{package.name}/", skip_tests=True, bytecode=True)
    native = [name for name, _ in entries if name.endswith(_NATIVE_SUFFIXES)]
    if native:
        raise PackageError(f"the common layer must be pure Python; found {', '.join(native)}")
    return write_zip(entries, out / f"{COMMON_LAYER}.zip", "layer")


def build_function(
    folder: Path, out: Path, work: WorkDirs, interpreters: Sequence[Path] = ()
) -> Artifact:
    if not (folder / "index.py").is_file():
        raise PackageError(f"{folder} has no index.py")
    staged = stage_tree(folder, work.staging / "functions" / folder.name)
    compile_tree(staged, interpreters, mount="/var/user")
    entries = tree_entries(staged, skip_tests=True, bytecode=True)
    return write_zip(entries, out / f"{scf_name(folder.name)}.zip", "function")


# -- bytecode ---------------------------------------------------------------------------------


def stage_tree(source: Path, staged: Path) -> Path:
    """A fresh copy of `source` (without caches) to compile and zip."""
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(source, staged, ignore=shutil.ignore_patterns(*_SKIPPED_DIRS, "*.pyc"))
    return staged


def find_interpreter(runtime: str) -> Path | None:
    """A CPython `runtime` (e.g. "3.10") on this machine, from PATH or pyenv."""
    candidates: list[Path] = []
    on_path = shutil.which(f"python{runtime}")
    if on_path:
        candidates.append(Path(on_path))
    if sys.version_info[:2] == tuple(int(part) for part in runtime.split(".")):
        candidates.append(Path(sys.executable))
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates.extend(sorted(pyenv.glob(f"{runtime}.*/bin/python{runtime}"), reverse=True))
    for candidate in candidates:
        try:
            found = subprocess.run(
                [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if found == runtime:
            return candidate
    return None


def compile_tree(tree: Path, interpreters: Sequence[Path], *, mount: str) -> None:
    """Write unchecked-hash bytecode for each interpreter; tracebacks name `mount` paths."""
    for interpreter in interpreters:
        subprocess.run(
            [
                str(interpreter),
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                "-s",
                str(tree),
                "-p",
                mount,
                str(tree),
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )


# -- the deps layer ---------------------------------------------------------------------------


def _pip(args: Sequence[str], work: WorkDirs, *, env: Mapping[str, str] | None = None) -> str:
    command = [
        sys.executable,
        "-m",
        "pip",
        *args,
        "--cache-dir",
        str(work.pip_cache),
        "--disable-pip-version-check",
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, env=dict(env) if env else None, check=False
    )
    if completed.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"
        lines = [ln for ln in completed.stderr.splitlines() if noise not in ln]
        raise PackageError(
            f"pip {args[0]} failed ({completed.returncode}):\n" + "\n".join(lines[-25:])
        )
    return completed.stdout


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _wheels_for(wheelhouse: Path, name: str, version: str) -> list[Path]:
    stem = f"{_normalise(name)}-{version}-".lower()
    return sorted(p for p in wheelhouse.glob("*.whl") if p.name.lower().startswith(stem))


def _report_items(report: Path) -> list[dict[str, Any]]:
    data = json.loads(report.read_text(encoding="utf-8"))
    items = data.get("install") or []
    return [item for item in items if isinstance(item, dict)]


def sdist_only_requirements(requirements: Path, work: WorkDirs) -> list[tuple[str, str]]:
    """(name, version) of every distribution the requirements pull in only as an sdist."""
    text = requirements.read_text(encoding="utf-8")
    report = work.reports / f"host-{_digest(text, installed_version('pip'))}.json"
    if not report.is_file():
        work.reports.mkdir(parents=True, exist_ok=True)
        partial = report.with_name(report.name + ".partial")
        _pip(
            [
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--report",
                str(partial),
                "-r",
                str(requirements),
            ],
            work,
        )
        partial.replace(report)
    found = []
    for item in _report_items(report):
        url = str((item.get("download_info") or {}).get("url", ""))
        if not url.endswith(".whl"):
            meta = item.get("metadata") or {}
            found.append((str(meta.get("name")), str(meta.get("version"))))
    return sorted(found)


def build_pure_wheels(items: Sequence[tuple[str, str]], work: WorkDirs) -> list[str]:
    """Build sdist-only requirements into the wheelhouse; each must come out pure Python.

    No compiler is offered (CC=false), so an sdist with an optional C speed-up falls back to its
    pure-Python form, and one that needs native code fails here instead of shipping host code.
    """
    work.wheelhouse.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CC": "false", "CXX": "false", "LDSHARED": "false"}
    built = []
    for name, version in items:
        if not _wheels_for(work.wheelhouse, name, version):
            _pip(
                [
                    "wheel",
                    "--no-deps",
                    "--quiet",
                    "--wheel-dir",
                    str(work.wheelhouse),
                    f"{name}=={version}",
                ],
                work,
                env=env,
            )
        wheels = _wheels_for(work.wheelhouse, name, version)
        if not wheels:
            raise PackageError(f"building {name} {version} produced no wheel")
        for wheel in wheels:
            tags = ResolvedDist(name, version, wheel.name).wheel_tags
            if tags is None or tags[1:] != ("none", "any"):
                raise PackageError(
                    f"{name} {version} has no {TARGET_PLATFORM} wheel and its source build is "
                    f"not pure Python ({wheel.name}): it cannot go into the deps layer"
                )
        built.append(f"{name} {version}")
    return built


def resolve_deps(runtime: str, requirements: Path, work: WorkDirs) -> list[ResolvedDist]:
    """What the deps layer build would install for `runtime` (a dry run with the same options)."""
    build_pure_wheels(sdist_only_requirements(requirements, work), work)
    work.reports.mkdir(parents=True, exist_ok=True)
    report = work.reports / f"resolve-{runtime_tag(runtime)}.json"
    _pip(
        [
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "--find-links",
            str(work.wheelhouse),
            *pip_target_args(runtime),
            "-r",
            str(requirements),
        ],
        work,
    )
    resolved = []
    for item in _report_items(report):
        meta = item.get("metadata") or {}
        url = str((item.get("download_info") or {}).get("url", ""))
        resolved.append(
            ResolvedDist(str(meta.get("name")), str(meta.get("version")), url.rsplit("/", 1)[-1])
        )
    return resolved


def stage_deps(runtime: str, requirements: Path, work: WorkDirs) -> tuple[Path, list[str]]:
    """Install the requirements for `runtime` into a staging tree (reused while inputs match).

    Returns the tree and the distributions that were built from source.
    """
    source_built = build_pure_wheels(sdist_only_requirements(requirements, work), work)
    staging = work.staging / deps_layer_name(runtime)
    key_file = staging.with_name(staging.name + ".key")
    key = _digest(
        requirements.read_text(encoding="utf-8"),
        runtime,
        TARGET_PLATFORM,
        installed_version("pip"),
        *sorted(p.name for p in work.wheelhouse.glob("*.whl")),
    )
    if staging.is_dir() and key_file.is_file() and key_file.read_text().strip() == key:
        return staging, source_built
    partial = staging.with_name(staging.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _pip(
        [
            "install",
            "--quiet",
            "--no-compile",
            "--target",
            str(partial),
            "--find-links",
            str(work.wheelhouse),
            *pip_target_args(runtime),
            "-r",
            str(requirements),
        ],
        work,
    )
    # Console scripts carry this machine's interpreter in their shebang; nothing runs them in SCF.
    shutil.rmtree(partial / "bin", ignore_errors=True)
    for cache in sorted(partial.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    partial.rename(staging)
    key_file.write_text(key + "\n")
    return staging, source_built


def build_deps_layer(
    runtime: str, requirements: Path, out: Path, work: WorkDirs
) -> tuple[Artifact, list[str]]:
    staging, source_built = stage_deps(runtime, requirements, work)
    interpreter = find_interpreter(runtime)
    compile_tree(staging, [interpreter] if interpreter else [], mount="/opt")
    entries = tree_entries(staging, bytecode=True)
    artifact = write_zip(entries, out / f"{deps_layer_name(runtime)}.zip", "layer")
    return artifact, source_built


# -- limits -----------------------------------------------------------------------------------


def declared_layer_counts(root: Path) -> dict[str, int]:
    """Layers bound per deployed function name, the larger count of the two descriptors."""
    counts: dict[str, int] = {}
    for loader, name in ((load_serverless, "serverless.yml"), (load_cloudbase, "cloudbaserc.json")):
        path = root / name
        if not path.is_file():
            continue
        try:
            descriptor = loader(path)
        except DescriptorError:
            continue
        for spec in descriptor.functions.values():
            key = spec.deployed_name
            counts[key] = max(counts.get(key, 0), len(spec.layers))
    return counts


def check_limits(
    functions: Sequence[Artifact],
    layers_by_runtime: Mapping[str, Sequence[Artifact]],
    layer_counts: Mapping[str, int],
    all_artifacts: Sequence[Artifact],
) -> tuple[list[Footprint], list[Finding]]:
    """Each function's code plus its layers against the SCF limits, per runtime."""
    footprints: list[Footprint] = []
    findings: list[Finding] = []
    for function in functions:
        name = function.name.removesuffix(".zip")
        for runtime, layers in layers_by_runtime.items():
            count = layer_counts.get(name, len(layers))
            total = function.unzipped_bytes + sum(layer.unzipped_bytes for layer in layers)
            footprints.append(Footprint(name, runtime, count, total))
            if total > UNZIPPED_LIMIT:
                findings.append(
                    Finding(
                        "error",
                        f"{name} (py{runtime})",
                        f"code + layers unzip to {total / MB:.1f} MB, over the "
                        f"{UNZIPPED_LIMIT // MB} MB limit",
                    )
                )
        count = layer_counts.get(name, 0)
        if count > MAX_LAYERS:
            findings.append(
                Finding("error", name, f"binds {count} layers; at most {MAX_LAYERS} are allowed")
            )
    for artifact in all_artifacts:
        if artifact.zipped_bytes > INLINE_ZIP_LIMIT:
            findings.append(
                Finding(
                    "warning",
                    artifact.name,
                    f"{artifact.zipped_bytes / MB:.1f} MB zipped, over the "
                    f"{INLINE_ZIP_LIMIT // MB} MB inline upload limit: deploy it through COS",
                )
            )
    return footprints, findings


# -- the whole build --------------------------------------------------------------------------


def build(
    *,
    root: Path = REPO_ROOT,
    out: Path,
    runtimes: Sequence[str] = DEFAULT_RUNTIMES,
    functions_only: bool = False,
    functions_dir: Path | None = None,
    work_dir: Path | None = None,
    requirements: Path | None = None,
) -> BuildResult:
    out.mkdir(parents=True, exist_ok=True)
    work = WorkDirs(work_dir or root / "build")
    requirements = requirements or root / DEPS_REQUIREMENTS
    runtimes = tuple(dict.fromkeys(runtimes))
    for runtime in runtimes:
        runtime_tag(runtime)
    artifacts: list[Artifact] = []
    layers_by_runtime: dict[str, list[Artifact]] = {}
    source_built: list[str] = []
    interpreters = {runtime: find_interpreter(runtime) for runtime in runtimes}
    found = [path for path in interpreters.values() if path is not None]
    if not functions_only:
        common = build_common_layer(root, out, work, found)
        artifacts.append(common)
        for runtime in runtimes:
            deps, built = build_deps_layer(runtime, requirements, out, work)
            artifacts.append(deps)
            layers_by_runtime[runtime] = [common, deps]
            source_built.extend(b for b in built if b not in source_built)
    folders = discover_functions(root) if functions_dir is None else function_folders(functions_dir)
    functions = [build_function(folder, out, work, found) for folder in folders.values()]
    artifacts.extend(functions)
    footprints, findings = check_limits(
        functions, layers_by_runtime, declared_layer_counts(root), artifacts
    )
    findings.extend(
        Finding("warning", f"py{runtime}", "no interpreter here: zips carry no bytecode for it")
        for runtime, path in interpreters.items()
        if path is None
    )
    result = BuildResult(tuple(artifacts), tuple(footprints), tuple(findings), tuple(source_built))
    write_manifest(result, out / "manifest.json")
    return result


def write_manifest(result: BuildResult, path: Path) -> None:
    def artifact(a: Artifact) -> dict[str, Any]:
        return {**asdict(a), "path": a.path.name}

    data = {
        "artifacts": [artifact(a) for a in result.artifacts],
        "footprints": [asdict(f) for f in result.footprints],
        "findings": [asdict(f) for f in result.findings],
        "source_built": list(result.source_built),
        "limits": {
            "unzipped_bytes": UNZIPPED_LIMIT,
            "layers": MAX_LAYERS,
            "inline_zip_bytes": INLINE_ZIP_LIMIT,
        },
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def render_report(result: BuildResult) -> str:
    lines = [f"{'artifact':<28} {'kind':<9} {'files':>6} {'zipped MB':>10} {'unzipped MB':>12}"]
    for a in result.artifacts:
        lines.append(
            f"{a.name:<28} {a.kind:<9} {a.files:>6} {a.zipped_bytes / MB:>10.2f} "
            f"{a.unzipped_bytes / MB:>12.2f}"
        )
    if result.footprints:
        lines += [
            "",
            f"{'function':<28} {'runtime':<9} {'layers':>6} {'code+layers unzipped MB':>24} "
            f"{'limit':>8}",
        ]
        for f in result.footprints:
            verdict = "ok" if f.unzipped_bytes <= UNZIPPED_LIMIT else "OVER"
            lines.append(
                f"{f.function:<28} {'py' + f.runtime:<9} {f.layers:>6} "
                f"{f.unzipped_bytes / MB:>24.2f} {verdict:>8}"
            )
        lines.append(
            f"limits: {UNZIPPED_LIMIT // MB} MB unzipped code + layers, {MAX_LAYERS} layers, "
            f"{INLINE_ZIP_LIMIT // MB} MB inline zip"
        )
    if result.source_built:
        lines += ["", "built here from sdists (pure Python): " + ", ".join(result.source_built)]
    for finding in result.findings:
        lines.append(f"{finding.level.upper()}: {finding.subject}: {finding.message}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.package", description="Build the layer and function zips."
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "package")
    parser.add_argument(
        "--runtime",
        action="append",
        dest="runtimes",
        metavar="3.X",
        help="deployed Python version of a deps layer (repeatable; default: 3.10 and 3.11)",
    )
    parser.add_argument("--functions-only", action="store_true", help="build no layers")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="project root")
    parser.add_argument("--functions-dir", type=Path, help="default: <root>/functions")
    parser.add_argument("--work-dir", type=Path, help="caches; default: <root>/build")
    parser.add_argument("--requirements", type=Path, help="default: layers/deps/requirements.txt")
    args = parser.parse_args(argv)
    try:
        result = build(
            root=args.root.resolve(),
            out=args.out.resolve(),
            runtimes=args.runtimes or DEFAULT_RUNTIMES,
            functions_only=args.functions_only,
            functions_dir=args.functions_dir.resolve() if args.functions_dir else None,
            work_dir=args.work_dir.resolve() if args.work_dir else None,
            requirements=args.requirements.resolve() if args.requirements else None,
        )
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 2
    print(render_report(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
