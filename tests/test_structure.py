"""The package's shape: no import cycles, and one trainer contract for every registered method."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

from prlkit.methods.contract import TrainingJob
from prlkit.methods.networks import NETWORKS
from prlkit.methods.registry import METHODS
from prlkit.segment.model import METHOD as SEGMENTATION_METHOD

SOURCE = Path(__file__).resolve().parents[1] / "src"


def module_imports() -> dict[str, set[str]]:
    """prlkit module -> the prlkit modules it imports anywhere in its file (module level or inside functions)."""
    modules = {}
    for path in (SOURCE / "prlkit").rglob("*.py"):
        name = ".".join(path.relative_to(SOURCE).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {target for target in imported if target in modules and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles_not_even_through_function_level_imports():
    graph = module_imports()
    assert graph.get("prlkit.methods.registry")
    assert find_cycle(graph) is None


def test_the_registry_imports_on_its_own():
    result = subprocess.run([sys.executable, "-c", "import prlkit.methods.registry"], capture_output=True, text=True,
                            cwd=SOURCE, check=False)
    assert result.returncode == 0, result.stderr


def test_every_trainer_takes_one_training_job():
    for name, spec in METHODS.items():
        parameters = [p for p in inspect.signature(spec.train).parameters.values()
                      if p.default is inspect.Parameter.empty and p.kind is not p.KEYWORD_ONLY]
        assert [p.name for p in parameters] == ["job"], name
        assert spec.network in NETWORKS or spec.network == SEGMENTATION_METHOD, name
    assert set(TrainingJob.__dataclass_fields__) >= {"method", "patch_set", "train_index", "val_index"}
