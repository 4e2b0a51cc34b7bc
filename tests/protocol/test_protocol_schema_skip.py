"""Without lms.json, the schema tests skip with a reason a contributor can act on; a
$LMSTUDIO_PROTOCOL_SCHEMA that names no file stops the run instead of skipping silently."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# What the schema tests need to run in a copy of the test tree that has no lms.json.
_NEEDED = [
    "conftest.py",
    "_protocol_schema.py",
    "_lms_client_frames.py",
    "types/test_types_schema.py",
]


def run_schema_tests(tests: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(tests / "types" / "test_types_schema.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tests.parent,
        timeout=60,
        check=False,
    )


def test_a_clone_without_the_schema_is_told_how_to_get_it(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    for name in _NEEDED:
        (clone / "tests" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(TESTS / name, clone / "tests" / name)
    (clone / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "LMSTUDIO_PROTOCOL_SCHEMA"}
    done = run_schema_tests(clone / "tests", env)
    assert done.returncode == 0, done.stdout + done.stderr
    reasons = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert reasons, done.stdout
    for reason in reasons:
        # What is missing, where it comes from, and where to put it (inside the clone).
        assert "lms.json" in reason
        assert "github.com/lmstudio-ai/lmstudio-python" in reason
        assert "tests/protocol-schema/lms.json" in reason
        assert "LMSTUDIO_PROTOCOL_SCHEMA" in reason


def test_a_schema_variable_naming_no_file_fails_the_run_saying_so(tmp_path: Path) -> None:
    absent = tmp_path / "absent" / "lms.json"
    done = run_schema_tests(TESTS, {**os.environ, "LMSTUDIO_PROTOCOL_SCHEMA": str(absent)})
    assert done.returncode == 4, done.stdout  # pytest's "usage error"
    assert "SKIPPED" not in done.stdout
    assert f"LMSTUDIO_PROTOCOL_SCHEMA is set to {absent}, which is not a file." in done.stderr
