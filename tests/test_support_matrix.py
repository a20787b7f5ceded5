"""docs/support-matrix.md is what scripts/support_matrix.py writes from the operator modules,
and what the operators declare about themselves (patterns, emulator tests) is true."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from cnn2gate import ops

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def load_script():
    spec = importlib.util.spec_from_file_location("support_matrix", ROOT / "scripts" / "support_matrix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doc_is_what_the_script_writes():
    script = load_script()
    assert script.DOC.read_text(encoding="utf-8") == script.render(), (
        "docs/support-matrix.md is out of date: run python scripts/support_matrix.py --write")


def test_check_flag_catches_a_stale_doc(tmp_path, monkeypatch, capsys):
    script = load_script()
    stale = tmp_path / "support-matrix.md"
    stale.write_text(script.render().replace("| yes |", "| no |", 1), encoding="utf-8")
    monkeypatch.setattr(script, "DOC", stale)
    monkeypatch.setattr(script, "ROOT", tmp_path)
    assert script.main(["--check"]) == 1 and "out of date" in capsys.readouterr().err
    assert script.main(["--write"]) == 0 and script.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == script.render()


def test_every_operator_is_a_row_and_every_kernel_a_template():
    text = load_script().render()
    for op in ops.OPS:
        assert f"| {op.name} (`{op.layer_type.kind}`) |" in text
        for kernel in op.kernels:
            assert f"`{kernel}`" in text
    # a kernel the templates do not define is refused, not listed
    script = load_script()
    assert "conv_core" in script.device_kernels() and "no_such_kernel" not in script.device_kernels()


def test_every_rewritten_node_names_its_onnx_form():
    handled = {t for (_, t) in ops.onnx_handlers("internal")}
    for op in ops.OPS:
        missing = set(op.internal_types) - set(op.patterns)
        assert not missing, f"op {op.name}: internal node types {sorted(missing)} have no `patterns` entry"
        for node, form in op.patterns.items():
            assert node in handled, f"op {op.name}: pattern key {node!r} is no node type an operator builds"
            assert form.strip()


# ---- the emulator claims: each named test exists, is an emulator test and names the op ---
def _module(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _defs(tree: ast.Module) -> dict[str, ast.AST]:
    """Module-level functions and assignments by name."""
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node
    return out


def _imported(tree: ast.Module) -> dict[str, Path]:
    """Names imported from sibling test modules (`from sim_checks import emulator_test`)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and (TESTS / f"{node.module}.py").exists():
            for alias in node.names:
                out[alias.asname or alias.name] = TESTS / f"{node.module}.py"
    return out


def _marks_emulator(node: ast.AST | None) -> bool:
    return node is not None and "mark.emulator" in ast.unparse(node)


def _name_marks(name: str, tree: ast.Module, seen: set) -> bool:
    """True when the module-level `name` (a decorator or a list of marks, here or imported from
    a sibling test module) applies pytest.mark.emulator, directly or through names it uses."""
    if name in seen:
        return False
    seen.add(name)
    defs = _defs(tree)
    if name not in defs:
        source = _imported(tree).get(name)
        return source is not None and _name_marks(name, _module(source), set())
    node = defs[name]
    if _marks_emulator(node):
        return True
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - {name}
    return any(_name_marks(u, tree, seen) for u in sorted(used))


def _decorator_marks(dec: ast.AST, tree: ast.Module) -> bool:
    if _marks_emulator(dec):
        return True
    base = dec.func if isinstance(dec, ast.Call) else dec
    return isinstance(base, ast.Name) and _name_marks(base.id, tree, set())


def _is_emulator_test(fn: ast.FunctionDef, tree: ast.Module) -> bool:
    if _marks_emulator(_defs(tree).get("pytestmark")):
        return True
    return any(_decorator_marks(d, tree) for d in fn.decorator_list)


def _reachable_source(fn: ast.FunctionDef, tree: ast.Module) -> str:
    """The test, the module-level helpers it calls (transitively) and the module's docstring."""
    defs, seen, todo, parts = _defs(tree), set(), [fn], [ast.get_docstring(tree) or ""]
    while todo:
        node = todo.pop()
        parts.append(ast.unparse(node))
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
                name = call.func.id
                if name in defs and name not in seen and isinstance(defs[name], ast.FunctionDef):
                    seen.add(name)
                    todo.append(defs[name])
    return "\n".join(parts)


def _names(op) -> set[str]:
    """Words that name `op` in a test: its name and node types, and its layer's kind and class
    when no other operator shares that layer class (depthwise layers are `Conv`s)."""
    words = {op.name, *op.onnx_types, *op.internal_types}
    if sum(o.layer_type is op.layer_type for o in ops.OPS) == 1:
        words |= {op.layer_type.kind, op.layer_type.__name__}
    return words


CLAIMS = [(op, claim) for op in ops.OPS for claim in op.emulator_tests]


@pytest.mark.parametrize("op,claim", CLAIMS, ids=[f"{op.name}-{claim.split('::')[-1]}" for op, claim in CLAIMS])
def test_emulator_claim_is_a_real_emulator_test_of_the_op(op, claim):
    file, _, name = claim.partition("::")
    path = ROOT / file
    assert path.parent == TESTS and path.exists(), f"op {op.name}: {file} is not a test file"
    tree = _module(path)
    fn = _defs(tree).get(name)
    assert isinstance(fn, ast.FunctionDef) and name.startswith("test"), f"op {op.name}: no test {name} in {file}"
    assert _is_emulator_test(fn, tree), f"op {op.name}: {claim} is not marked `emulator`"
    text = _reachable_source(fn, tree)
    words = sorted(_names(op))
    pattern = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, words)) + r")(?![A-Za-z0-9])", re.I)
    assert pattern.search(text), f"op {op.name}: {claim} (and the helpers it calls) never names it ({words})"


def test_the_claim_checker_rejects_what_it_should():
    # a test that is not an emulator test, and one that does not name the op
    tree = _module(TESTS / "test_support_matrix.py")
    fn = _defs(tree)["test_doc_is_what_the_script_writes"]
    assert not _is_emulator_test(fn, tree)
    emu = _module(TESTS / "test_mul.py")
    mul_test = _defs(emu)["test_mul_kernel_bit_exact_in_emulator"]
    assert _is_emulator_test(mul_test, emu)
    # a skip marker alone (test_emulate.py's needs_emulator) is not the emulator mark
    assert not _name_marks("needs_emulator", _module(TESTS / "test_emulate.py"), set())
    text = _reachable_source(mul_test, emu)
    assert not re.search(r"(?<![A-Za-z0-9])lrn(?![A-Za-z0-9])", text, re.I)
