"""Cold-start cost of each function: how long a fresh interpreter takes to import its handler.

For every `functions/*/index.py`, a fresh interpreter (`python -I -S`) is spawned N times; it puts
[function dir, layers/common] and this venv's site-packages on sys.path (as SCF puts /var/user and
/opt), imports `index` and reports the import time it measured itself (time.perf_counter around
the import). The parent measures the whole process. `python -c pass` is measured in the same run
as the baseline, since absolute figures drift between runs on this machine.

`--packaged DIR` measures what deploys: the zips `make package` wrote to DIR are unpacked like
SCF does (function zip → var/user, layers → opt) and the child's sys.path is only those two, with
the bytecode the zips ship. `--no-bytecode` points each child at an empty bytecode cache
(`-X pycache_prefix`), so every module is compiled from source: what SCF would do if the zips
carried no `__pycache__` (its code directories are read-only).

    python bench/coldstart.py [-n 5] [--function admin_api] [--packaged build/package]
                              [--no-bytecode] [--json] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300.0

CHILD = r"""
import json, sys, time
sys.path[:0] = json.loads(sys.argv[1])
started = time.perf_counter()
import index
elapsed = time.perf_counter() - started
print(json.dumps({"import_ms": elapsed * 1000, "modules": len(sys.modules)}))
"""


@dataclass(frozen=True)
class FunctionFigures:
    function: str
    runs: int
    import_median_ms: float
    import_min_ms: float
    import_max_ms: float
    process_median_ms: float
    modules: int
    under_target: bool


def discover(root: Path) -> dict[str, Path]:
    found = {p.parent.name: p.parent for p in root.glob("functions/*/index.py")}
    return dict(sorted(found.items()))


def _site_packages() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def _environment() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def _timed(command: Sequence[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=cwd, env=_environment(), capture_output=True, text=True, check=False
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{completed.stderr[-2000:]}")
    return elapsed_ms, completed.stdout


def measure_baseline(runs: int) -> float:
    return statistics.median(
        _timed([sys.executable, "-c", "pass"], REPO_ROOT)[0] for _ in range(runs)
    )


def unpack_like_scf(package_dir: Path, function: str, dest: Path) -> tuple[Path, list[str]]:
    """Unpack a function zip and its layers as SCF mounts them; (code dir, sys.path)."""
    runtime = f"py{sys.version_info[0]}{sys.version_info[1]}"
    user, opt = dest / "var" / "user", dest / "opt"
    with zipfile.ZipFile(package_dir / f"{function.replace('_', '-')}.zip") as archive:
        archive.extractall(user)
    for layer in ("hybrid-common.zip", f"hybrid-deps-{runtime}.zip"):
        with zipfile.ZipFile(package_dir / layer) as archive:
            archive.extractall(opt)
    return user, [str(user), str(opt)]


def measure_function(
    name: str,
    folder: Path,
    runs: int,
    target_ms: float,
    *,
    bytecode: bool = True,
    path: Sequence[str] | None = None,
) -> FunctionFigures:
    if path is None:
        path = [str(folder), str(REPO_ROOT / "layers" / "common"), *_site_packages()]
    imports: list[float] = []
    processes: list[float] = []
    modules = 0
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="coldstart-") as empty_cache:
            cache = [] if bytecode else ["-X", f"pycache_prefix={empty_cache}"]
            command = [
                sys.executable,
                "-I",
                "-S",
                "-B",
                *cache,
                "-c",
                CHILD,
                json.dumps(list(path)),
            ]
            process_ms, stdout = _timed(command, folder)
        report = json.loads(stdout.strip().splitlines()[-1])
        imports.append(float(report["import_ms"]))
        processes.append(process_ms)
        modules = int(report["modules"])
    median = statistics.median(imports)
    return FunctionFigures(
        function=name,
        runs=runs,
        import_median_ms=round(median, 1),
        import_min_ms=round(min(imports), 1),
        import_max_ms=round(max(imports), 1),
        process_median_ms=round(statistics.median(processes), 1),
        modules=modules,
        under_target=median < target_ms,
    )


def render(
    figures: Sequence[FunctionFigures],
    baseline_ms: float,
    target_ms: float,
    bytecode: bool,
    packaged: bool = False,
) -> str:
    mode = "as shipped in the zips" if packaged else "as cached on disk"
    lines = [
        ("code: unpacked zips (var/user + opt)" if packaged else "code: the working tree"),
        "bytecode: " + (mode if bytecode else "none (every module compiled from source)"),
        f"{'function':<20} {'import median':>13} {'min':>8} {'max':>8} {'process':>9} "
        f"{'modules':>8}  target {target_ms:.0f} ms",
    ]
    for f in figures:
        verdict = "ok" if f.under_target else "OVER"
        lines.append(
            f"{f.function:<20} {f.import_median_ms:>10.1f} ms {f.import_min_ms:>8.1f} "
            f"{f.import_max_ms:>8.1f} {f.process_median_ms:>6.1f} ms {f.modules:>8}  {verdict}"
        )
    if not figures:
        lines.append("(no functions/*/index.py found)")
    lines.append(f"baseline `python -c pass`: {baseline_ms:.1f} ms (median, same run)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cold-start import time of each function.")
    parser.add_argument("-n", "--runs", type=int, default=5, help="fresh interpreters each")
    parser.add_argument("--function", action="append", help="only these folders (repeatable)")
    parser.add_argument("--target-ms", type=float, default=TARGET_MS)
    parser.add_argument(
        "--no-bytecode", action="store_true", help="compile every module from source, as SCF does"
    )
    parser.add_argument(
        "--packaged", type=Path, metavar="DIR", help="measure the zips `make package` wrote"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable figures")
    parser.add_argument("--check", action="store_true", help="exit 1 if any is over the target")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    functions = discover(REPO_ROOT)
    if args.function:
        unknown = sorted(set(args.function) - set(functions))
        if unknown:
            parser.error(f"unknown function(s): {', '.join(unknown)}")
        functions = {k: v for k, v in functions.items() if k in args.function}
    baseline_ms = measure_baseline(args.runs)
    figures = []
    with tempfile.TemporaryDirectory(prefix="scf-") as scratch:
        for name, folder in functions.items():
            code_dir, path = folder, None
            if args.packaged:
                code_dir, path = unpack_like_scf(args.packaged, name, Path(scratch) / name)
            figures.append(
                measure_function(
                    name,
                    code_dir,
                    args.runs,
                    args.target_ms,
                    bytecode=not args.no_bytecode,
                    path=path,
                )
            )
    if args.json:
        document = {
            "target_ms": args.target_ms,
            "baseline_process_ms": round(baseline_ms, 1),
            "bytecode": not args.no_bytecode,
            "packaged": bool(args.packaged),
            "python": sys.version.split()[0],
            "functions": [asdict(f) for f in figures],
        }
        print(json.dumps(document, indent=2))
    else:
        print(
            render(figures, baseline_ms, args.target_ms, not args.no_bytecode, bool(args.packaged))
        )
    if args.check and not all(f.under_target for f in figures):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
