"""The package tree is layered: no module imports a layer above its own (function-level imports included)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lightsnn"
#: Lowest first. A module may import its own layer and those before it.
LAYERS = ["core", "data", "space", "proxies", "training", "search", "nasbench", "pipeline", "studies", "entry"]


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in ("cli", "schema", "__main__", "__init__"):
        return "entry"
    return parts[1]


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the module's own package
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = package[:len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("lightsnn"):
                found.add(name)
                found.update(f"{name}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("lightsnn"))
    return found


def test_no_module_imports_a_layer_above_its_own():
    violations = []
    modules = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        modules += 1
        own = LAYERS.index(_layer(module if rel.name != "__init__" else module + ".__init__"))
        for name in _imports(path, module):
            target = _layer(name)
            if target in LAYERS and LAYERS.index(target) > own and name != "lightsnn":
                violations.append(f"{module} imports {name}")
    assert modules > 20
    assert not violations, "\n".join(sorted(violations))


def test_every_package_says_what_it_owns():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 60, init
