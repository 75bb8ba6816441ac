"""The README's two commands exist as the project promises, and CI runs the README's test command."""

from __future__ import annotations

import re

from conftest import ROOT


def commands(text: str) -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_opens_with_the_demo_and_the_test_command():
    readme = (ROOT / "README.md").read_text()
    first_two = commands(readme)[:2]
    assert first_two[0].endswith("yolo-cam demo")  # installs and runs the main job on the bundled model, offline
    assert first_two[1].endswith("python -m pytest -q")  # installs and passes the tests


def test_ci_runs_the_readme_test_command():
    readme_test = commands((ROOT / "README.md").read_text())[1]
    assert readme_test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_pytest_finding_no_test_fails_ci():
    """`set -e` turns pytest's exit code 5 (no tests collected) into a failed CI run."""
    script = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in script
