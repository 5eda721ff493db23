"""The package's shape: no import cycles, rooms that depend only downward,
no TensorFlow where it is not needed, no module too long."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"facegate": ROOT / "shared" / "facegate", "services": ROOT / "services"}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([name, *parts])] = path
    return found


def _type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_runtime(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not _type_checking_block(child):
                stack.append(child)


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``module`` imports at run time (anywhere in it)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in _walk_runtime(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


# Which room may import which (a room is the first two parts of a module name;
# the package's own __init__ only re-exports, lazily).
BELOW = {
    "core": set(),
    "runtime": {"core"},
    "engine": {"core", "runtime"},
    "adapters": {"core", "runtime", "engine"},
    "training": {"core", "runtime", "engine"},
    "clients": {"core", "runtime", "adapters"},
}
ALLOWED = {f"facegate.{r}": {f"facegate.{b}" for b in {r, *below}} for r, below in BELOW.items()}


def room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_rooms_depend_only_downward() -> None:
    wrong = []
    for module, targets in graph().items():
        allowed = ALLOWED.get(room(module))
        if allowed is None:
            continue  # tools and services sit on top and may use everything below
        wrong += [f"{module} -> {t}" for t in sorted(targets) if room(t) not in allowed]
    assert wrong == []


def test_services_do_not_import_each_other() -> None:
    wrong = []
    for module, targets in graph().items():
        if module.startswith("services."):
            own = ".".join(module.split(".")[:2])
            wrong += [
                f"{module} -> {t}"
                for t in targets
                if t.startswith("services.") and not t.startswith(own) and t != "services"
            ]
    assert wrong == []


def test_no_module_is_too_long() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules().values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


NO_TENSORFLOW = [
    "services.ingest.__main__",
    "services.ingest.app",
    "services.ingest.http",
    "services.matcher.__main__",
    "services.matcher.app",
    "services.encoder.__main__",
    "services.mqtt.__main__",
    "services.mqtt.app",
    "facegate.clients.lock",
    "facegate.clients.camera",
    "facegate.clients.admin",
    "facegate.tools.cli",
    "facegate.tools.cli_pipeline",
    "facegate.tools.cli_lock",
    "facegate.tools.cli_camera",
    "facegate.tools.cli_stack",
    "facegate.tools.devstack",
    "facegate.tools.demo",
    "facegate.tools.demo_lock",
    "facegate.tools.demo_doors",
    "facegate.engine",
    "facegate.engine.factory",
    "facegate",
]


@pytest.mark.parametrize("module", NO_TENSORFLOW)
def test_importing_does_not_import_tensorflow(module: str) -> None:
    """In a fresh interpreter: importing the module loads no TensorFlow,
    Keras or MTCNN (the encoder builds its model explicitly, after start)."""
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'mtcnn', 'matplotlib'))\n"
        "print(','.join(heavy[:5]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


def test_the_cli_answers_non_engine_commands_without_tensorflow() -> None:
    code = (
        "import sys\n"
        "from facegate.tools.cli import main\n"
        "try:\n"
        "    main(['doors', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip().splitlines()[-1] == "False"


# opentelemetry: redis-py imports opentelemetry-api (its optional tracing) whenever it
# is installed, and FastAPI (ingest, base install) requires it; facegate never imports it.
LOCK_ALLOWED = {"facegate", "redis", "cryptography", "async_timeout", "opentelemetry"}


def test_the_lock_client_needs_only_redis_and_cryptography() -> None:
    """What a lock vendor installs (``facegate[lock]``): facegate's lock
    client imports nothing beyond the standard library, redis and
    cryptography (Ed25519 signatures)."""
    code = (
        "import sys\n"
        # redis imports opentelemetry by itself when it is installed (fastapi,
        # in the console extra, brings it): that is redis's, not the lock's
        "import redis\n"
        "before = set(sys.modules)\n"
        "import facegate.clients.lock\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "stdlib = set(sys.stdlib_module_names)\n"
        "print(','.join(sorted(m for m in new if m not in stdlib and not m.startswith('_'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    third_party = {m for m in out.stdout.strip().split(",") if m}
    assert third_party <= LOCK_ALLOWED, third_party - LOCK_ALLOWED


def test_the_lock_extra_names_what_the_lock_client_imports() -> None:
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["lock"]
    names = {re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower() for requirement in extra}
    assert names == LOCK_ALLOWED - {"facegate", "async_timeout", "opentelemetry"}
    base = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in project["dependencies"]}
    assert names <= base  # the matcher signs with the same library
