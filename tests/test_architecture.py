"""The shape of the package: imports go one way (transports → server → handler → storage →
protocol), with no cycle, lazy imports and type-only imports included (docs/architecture.md)."""

from __future__ import annotations

import ast
import os

from .support import ROOT

PACKAGE = os.path.join(ROOT, "app", "altwebsocket")

# The layers, top to bottom. A module may import its own layer's modules (without a cycle)
# and the layers below it, never a layer above. Leaves everyone may import: the exceptions,
# the config, the cheap-import helpers.
LAYERS = [
    ["altwebsocket", "altwebsocket.__main__", "altwebsocket.cli", "altwebsocket.cgiserver",
     "altwebsocket.bench", "altwebsocket.site", "altwebsocket.flask_ext",
     "altwebsocket.resources", "altwebsocket.client"],
    ["altwebsocket.transports"],
    ["altwebsocket.server"],
    ["altwebsocket.apps", "altwebsocket.handler"],
    ["altwebsocket.storage"],
    ["altwebsocket.protocol"],
    ["altwebsocket.config", "altwebsocket.exceptions", "altwebsocket._lazy"],
]


def module_name(path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def modules() -> dict[str, str]:
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                found[module_name(path)] = path
    return found


def imports_of(name: str, path: str, known: set[str]) -> set[str]:
    """Every module of the package that ``name`` imports, anywhere in its body."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    is_package = path.endswith("__init__.py")
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("altwebsocket"):
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def layer_of(name: str) -> int:
    best, rank = "", -1
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, index
    assert rank >= 0, f"{name} has no layer: add it to LAYERS"
    return rank


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def upward(edges: dict[str, set[str]]) -> list[str]:
    """The imports that go up a layer."""
    return sorted(f"{name} -> {target}" for name, targets in edges.items()
                  for target in targets if layer_of(target) < layer_of(name))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``edges`` (a package importing its own submodules excepted)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target.startswith(node + "."):
                continue
            if state.get(target) == 1:
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_no_import_goes_up_a_layer() -> None:
    assert upward(graph()) == []


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_the_checks_see_a_server_that_imports_a_transport() -> None:
    """The checks themselves: the lazy import the old ``server.wsgi_app`` made is refused."""
    edges = graph()
    assert "altwebsocket.server" in edges["altwebsocket.transports.http.stream"]
    edges["altwebsocket.server"] = edges["altwebsocket.server"] | {
        "altwebsocket.transports.http.wsgi"}
    assert upward(edges) == ["altwebsocket.server -> altwebsocket.transports.http.wsgi"]
    assert cycles(edges)


def test_lazy_and_type_only_imports_are_edges() -> None:
    edges = graph()
    # run() imports the server inside the function; wsgi imports it under TYPE_CHECKING
    assert "altwebsocket.server" in edges["altwebsocket.transports.http.cgi"]
    assert "altwebsocket.server" in edges["altwebsocket.transports.http.wsgi"]


def test_the_package_ships_no_benchmark_lab() -> None:
    """``altws bench URL`` (the paper's procedure) is a user command; the lab that compares
    us with peers lives in ``benchmarks/`` at the top of the repository."""
    lab = {"local", "servers", "browser", "loadgen"}
    shipped = {name.rpartition(".")[2] for name in modules() if name.startswith(
        "altwebsocket.bench")}
    assert not lab & shipped
