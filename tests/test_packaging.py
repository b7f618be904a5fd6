"""The wheel, as a user gets it: built from this tree, installed with pip into a fresh venv
(dependencies from pip's configured index), then the console script and the import run
there, away from the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ("cache-hit", "flaky", "outage", "outage-window", "overhead", "rate-limited")
OPTIONAL = ("redis", "opentelemetry", "rich", "matplotlib", "aiolimiter", "tomli", "pytest")
# pip's own words when it cannot reach or find a package: the one reason to skip, not fail.
OFFLINE = ("No matching distribution found", "Could not find a version",
           "Failed to establish a new connection", "Temporary failure in name resolution",
           "Network is unreachable")
IMPORTS_NOTHING_OPTIONAL = (
    "import resilient_http, resilient_http.testing, sys; "
    f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({OPTIONAL!r})); "
    "assert not loaded, loaded"
)


def run(*args: str | Path, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.wheel
@pytest.mark.timeout(240)
def test_the_wheel_works_in_a_clean_venv(tmp_path: Path) -> None:
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist",
                REPO, cwd=tmp_path, timeout=120)
    if built.returncode and any(s in built.stderr for s in OFFLINE):
        pytest.skip(f"pip cannot fetch the build backend: {built.stderr.strip()[-300:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("resilient_http-*.whl")

    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = Parser().parsestr(z.read(next(n for n in names if n.endswith("/METADATA")))
                                 .decode())
        entry_points = z.read(next(n for n in names if n.endswith("/entry_points.txt")))
    for name in SCENARIOS:
        assert f"resilient_http/bench/scenarios/{name}.toml" in names
    assert "resilient_http/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    requires = meta.get_all("Requires-Dist") or []
    core = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("yarl") for r in core)
    assert not any(r.startswith("aiolimiter") for r in core)
    assert any(r.startswith("aiolimiter") and "extra == 'bench'" in r for r in requires)
    assert "Typing :: Typed" in (meta.get_all("Classifier") or [])
    assert b"[pytest11]" in entry_points

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    installed = run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path, timeout=150)
    if installed.returncode and any(s in installed.stderr for s in OFFLINE):
        pytest.skip(f"pip cannot install the dependencies: {installed.stderr.strip()[-300:]}")
    assert installed.returncode == 0, installed.stderr

    work = tmp_path / "elsewhere"  # no benchmarks/ folder, no source tree on the path
    work.mkdir()
    imported = run(python, "-c", IMPORTS_NOTHING_OPTIONAL, cwd=work)
    assert imported.returncode == 0, imported.stderr
    listed = run(bindir / "resilient-http", "bench", "--list", cwd=work)
    assert listed.returncode == 0, listed.stderr
    for name in SCENARIOS:
        assert f"  {name} " in listed.stdout
    bench = run(bindir / "resilient-http", "bench", "flaky", "--requests", "10", "--rounds", "1",
                "--contenders", "bare,standard", "--plain", "--quiet", cwd=work)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    assert "standard" in bench.stdout
    tuned = run(bindir / "resilient-http", "tune", "flaky", "--param", "Retry.attempts=2,4",
                "--requests", "10", "--rounds", "1", "--plain", "--quiet", cwd=work)
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    assert "rh.Retry(attempts=" in tuned.stdout
