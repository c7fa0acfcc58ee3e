"""The CUDA tests (tests/test_cuda.py) are skipped on every machine CI has, so what would break them
on a GPU has to be caught here: each fixture they ask for must exist where they run. (On the first
GPU they met, three of them asked for a fixture that only tests/test_host_syncs.py defined.)"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A pytest plugin: after collection, print every fixture a test asks for that nothing defines.
PLUGIN = """
def pytest_collection_modifyitems(session, config, items):
    for item in items:
        info = item._fixtureinfo
        for name in info.names_closure:
            if name not in info.name2fixturedefs and name != "request":
                print(f"MISSING {item.nodeid} {name}")
"""


def _missing_fixtures(test_file: Path, tmp_path: Path) -> list[str]:
    (tmp_path / "fixture_check.py").write_text(PLUGIN)
    command = [sys.executable, "-m", "pytest", str(test_file), "--collect-only", "-q"]
    command += ["-p", "fixture_check", "-p", "no:cacheprovider"]
    run = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"{test_file.name}::" in run.stdout  # it did collect the tests
    return [line for line in run.stdout.splitlines() if line.startswith("MISSING")]


def test_every_fixture_of_the_cuda_tests_is_defined(tmp_path):
    assert _missing_fixtures(ROOT / "tests" / "test_cuda.py", tmp_path) == []


def test_the_check_sees_a_missing_fixture(tmp_path):
    planted = tmp_path / "test_planted.py"
    planted.write_text("def test_uses_a_fixture_nobody_defines(no_such_fixture):\n    pass\n")
    missing = _missing_fixtures(planted, tmp_path)
    assert len(missing) == 1 and missing[0].endswith("no_such_fixture"), missing
