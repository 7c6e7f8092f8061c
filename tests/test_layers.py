"""The import-linter contracts hold on the tree, and a deliberate violation in a scratch copy breaks them."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=folder, capture_output=True, text=True, env={"PYTHONPATH": str(folder)}
    )


def _scratch_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    for name in ("components", "flows", "party_agent", "app"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_tree_keeps_every_layer_contract():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_a_core_module_importing_torch_breaks_the_contracts(tmp_path):
    copy = _scratch_copy(tmp_path)
    params = copy / "components" / "core" / "params.py"
    params.write_text(params.read_text() + "\nimport torch  # deliberate violation\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert "The pure core does no I/O and trains nothing BROKEN" in result.stdout
    assert "components.core.params -> torch" in result.stdout


def test_the_core_importing_the_run_breaks_the_layers(tmp_path):
    copy = _scratch_copy(tmp_path)
    kernels = copy / "components" / "core" / "kernels.py"
    kernels.write_text(kernels.read_text() + "\nfrom components.run import coordinator  # deliberate violation\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert "Rooms of components" in result.stdout and "BROKEN" in result.stdout
