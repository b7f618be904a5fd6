"""The pytest plugin: registered by the package's ``pytest11`` entry point, and the README's
testing example runs as copied into a project with no pytest configuration of its own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
# A project of its own: no asyncio_mode = auto (pytest-asyncio's strict default), no conftest,
# no pytest_plugins line; warnings are errors (the loop scope set, as pytest-asyncio asks).
INI = "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"


def readme_testing_example() -> str:
    """The Python block of the README's "Testing your own code" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Testing your own code", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "one example in the README's testing section"
    return blocks[0]


def test_the_readme_testing_example_runs_as_copied(tmp_path: Path) -> None:
    (tmp_path / "test_example.py").write_text(readme_testing_example(), encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(INI, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "test_example.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout


def test_the_fixtures_come_from_the_entry_point(tmp_path: Path) -> None:
    """``--fixtures`` lists them with no conftest (and the test that uses one passes)."""
    (tmp_path / "test_fixtures.py").write_text(
        "from resilient_http.testing import FakeClock\n\n"
        "def test_clock(fake_clock):\n"
        "    assert isinstance(fake_clock, FakeClock) and fake_clock.now() == 0.0\n",
        encoding="utf-8",
    )
    (tmp_path / "pytest.ini").write_text(INI, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "--fixtures", "-v", "test_fixtures.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("mock_server", "mock_server_factory", "fake_clock"):
        assert f"{name} -- " in done.stdout, done.stdout


def test_without_pytest_asyncio_only_the_async_fixtures_complain(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(
        "def test_sync(fake_clock):\n"
        "    assert fake_clock.now() == 0.0\n\n"
        "def test_async_fixture(mock_server):\n"
        "    pass\n",
        encoding="utf-8",
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    no_asyncio = (  # a pytest where pytest_asyncio cannot be imported
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pytest_asyncio':\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pytest\n"
        # --assert=plain: pytest's import hook would otherwise load it past the block
        "sys.exit(pytest.main(['-p', 'no:asyncio', '--assert=plain', '-p', 'no:cacheprovider', "
        "'-q', 'test_plain.py']))\n"
    )
    done = subprocess.run([sys.executable, "-c", no_asyncio], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert "1 passed" in done.stdout and "1 error" in done.stdout, done.stdout + done.stderr
    assert "the mock_server fixture needs pytest-asyncio" in done.stdout
