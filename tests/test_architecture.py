"""The import rules of the tree: providers depend on ``stack`` and ``providers.utils``, never
on the routing layer nor on each other. Shared provider code lives in ``providers/utils``."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROVIDERS = REPO / "providers"


def _module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def _provider_package(module: str) -> str | None:
    """``providers.<inline|remote>.<api>.<name>`` that ``module`` belongs to, if any."""
    parts = module.split(".")
    if len(parts) >= 4 and parts[0] == "providers" and parts[1] in ("inline", "remote"):
        return ".".join(parts[:4])
    return None


def _provider_files() -> list[Path]:
    return sorted(p for p in PROVIDERS.rglob("*.py") if "__pycache__" not in p.parts)


def test_providers_do_not_import_the_routing_layer():
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in _provider_files()
        for line, name in _imports(path)
        if name == "stack.routing" or name.startswith("stack.routing.")
    ]
    assert offenders == []


def test_no_provider_imports_another_provider():
    offenders = []
    for path in _provider_files():
        mine = _provider_package(_module_name(path))
        for line, name in _imports(path):
            if not name.startswith("providers.") or name.startswith("providers.utils"):
                continue
            theirs = _provider_package(name)
            if theirs is None or theirs != mine:
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert offenders == []


def test_shared_provider_code_lives_in_utils():
    # a module beside the provider packages of an API is shared code in disguise
    stray = [
        str(p.relative_to(REPO)) for p in _provider_files()
        if p.relative_to(PROVIDERS).parts[0] != "utils" and len(p.relative_to(PROVIDERS).parts) == 3
        and p.name != "__init__.py"
    ]
    assert stray == []


def test_the_rules_see_a_violation(tmp_path):
    """The checks above find what they look for (they would pass on an empty tree too)."""
    fake = tmp_path / "providers" / "remote" / "inference" / "acme"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("from providers.inline.vector_io.faiss import x\nfrom ..other import y\n"
                                      "from stack.routing.routers import z\n")
    imports = _imports(fake / "__init__.py", tmp_path)
    assert [name for _, name in imports] == [
        "providers.inline.vector_io.faiss", "providers.remote.inference.other", "stack.routing.routers"]
    assert _provider_package(imports[0][1]) != _provider_package("providers.remote.inference.acme")
