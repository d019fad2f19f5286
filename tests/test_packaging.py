"""What a fresh install needs: the runtime packages import exactly the runtime dependencies,
and CI runs the README's own two commands."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PACKAGES = ("fusion", "sensors", "tracking", "geo")


def _distribution_name(requirement: str) -> str:
    """'paho-mqtt>=2.0' → 'paho-mqtt' (PEP 503 normalised)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_levels(package: Path) -> set[str]:
    """Every top-level module any file of ``package`` imports, at module level or inside functions."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_runtime_imports_are_exactly_the_runtime_dependencies():
    """``pip install .`` (no extras) must be enough to run every command, and a runtime dependency
    must be used at runtime (a test-only library belongs in the ``test`` extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_distribution_name(r) for r in project["dependencies"]}
    # an optional feature's library (e.g. pyarrow for Parquet output) is imported only when that feature runs
    optional = {_distribution_name(r) for r in project["optional-dependencies"]["parquet"]}
    third_party = set()
    for package in RUNTIME_PACKAGES:
        third_party |= _imported_top_levels(ROOT / package)
    third_party -= set(sys.stdlib_module_names) | set(RUNTIME_PACKAGES)
    providers = importlib.metadata.packages_distributions()
    imported = {_distribution_name(providers[name][0]) for name in third_party if name in providers}
    assert third_party - set(providers) == set(), "imported but installed by no distribution"
    assert imported - declared - optional == set(), "imported at runtime but not a runtime dependency"
    assert declared - imported == set(), "a runtime dependency no runtime module imports"


def _ci_copy(tmp_path: Path, readme: str) -> Path:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "README.md").write_text(readme)
    return tmp_path / ".ci" / "run"


def _readme(*blocks: str, later: str = "") -> str:
    body = "\n\n".join(f"```sh\n{b}\n```" for b in blocks)
    return f"# project\n\n{body}\n\nSome words.\n\n## Later\n\n{later}\n"


def _run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60)


def test_ci_runs_exactly_the_readmes_two_top_commands():
    dry = _run(ROOT / ".ci" / "run", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    readme = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    assert dry.stdout.splitlines() == [line for block in re.findall(r"```sh\n(.*?)```", readme, re.S)
                                       for line in block.splitlines()]


@pytest.mark.parametrize("blocks,status,message", [
    (("touch one", "touch two"), 0, "both README commands passed"),
    (("exit 3", "touch two"), 3, "README command 1 failed with exit status 3"),
    (("touch one", "false && true; exit 4"), 4, "README command 2 failed"),
    (("touch one", "exit 5"), 1, "ran no test"),
    (("touch one",), 1, "exactly two"),
    (("touch one", "touch two", "touch three"), 1, "exactly two"),
])
def test_ci_fails_when_a_command_fails_or_the_readme_is_not_two_commands(tmp_path, blocks, status, message):
    script = _ci_copy(tmp_path, _readme(*blocks, later="```sh\ntouch later\n```"))
    result = _run(script)
    assert result.returncode == status, result.stderr
    assert message in result.stderr
    ran = {p.name for p in tmp_path.iterdir()} & {"one", "two", "three", "later"}
    assert "later" not in ran  # blocks after the first '## ' heading are documentation, not CI
    if status == 0:
        assert ran == {"one", "two"}


def test_version_comes_from_pyproject():
    import fusion

    assert fusion.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
