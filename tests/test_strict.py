"""The strict mode of the suite (tests/strict.py): in CI a skip is a failure unless an optional extra explains it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

CONFTEST = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import pytest
from strict import enforce

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    enforce(outcome.get_result())

@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    enforce(outcome.get_result())
"""

TESTS = """
import pytest

def test_runs():
    assert True

@pytest.mark.skipif(True, reason="no PostgreSQL")
def test_needs_a_database():
    pass

@pytest.mark.skipif(True, reason="apache-tvm is not installed: make install-tvm")
def test_needs_an_optional_extra():
    pass
"""

MODULE_SKIP = """
import pytest
pytest.importorskip("no_such_package_aiaas", reason="the llm extra is not installed")

def test_never():
    pass
"""


def _pytest(tmp_path: Path, name: str, source: str, strict: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / name).write_text(source)
    env = {**os.environ, "AIAAS_TEST_STRICT": strict}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("strict", ["1", ""])
def test_skips_fail_only_in_strict_mode_and_only_without_an_optional_reason(tmp_path: Path, strict: str) -> None:
    tests, module = _pytest(tmp_path, "test_a.py", TESTS, strict), _pytest(tmp_path, "test_b.py", MODULE_SKIP, strict)
    if strict:
        assert tests.returncode == 1, tests.stdout  # a skip in setup (skipif) is reported as an error
        assert "ERROR test_a.py::test_needs_a_database" in tests.stdout and "strict mode" in tests.stdout
        assert "SKIPPED" in tests.stdout and "apache-tvm" in tests.stdout  # an optional extra still skips
        assert module.returncode == 2 and "strict mode" in module.stdout, module.stdout  # a module skip too
    else:
        assert tests.returncode == 0 and "1 passed, 2 skipped" in tests.stdout, tests.stdout
        assert module.returncode == 5 and "1 skipped" in module.stdout, module.stdout
