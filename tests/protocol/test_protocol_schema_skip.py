"""Without lms.json, the schema tests skip with a reason a contributor can act on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_a_clone_without_the_schema_is_told_how_to_get_it(tmp_path: Path) -> None:
    env = {**os.environ, "LMSTUDIO_PROTOCOL_SCHEMA": str(tmp_path / "absent" / "lms.json")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(TESTS / "types" / "test_types_schema.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=TESTS.parent,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    reasons = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert reasons, done.stdout
    for reason in reasons:
        # What is missing, where it comes from, and where to put it (inside the clone).
        assert "lms.json" in reason
        assert "github.com/lmstudio-ai/lmstudio-python" in reason
        assert "tests/protocol-schema/lms.json" in reason
        assert "LMSTUDIO_PROTOCOL_SCHEMA" in reason
