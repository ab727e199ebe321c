"""Each object is built once, complete: the wiring changes no object after building it (issue 22, item 4)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The composition root and what it calls to build things.
WIRING = ("bot/wiring.py", "bot/serve.py", "bot/app.py", "grants/adapters/kinds/__init__.py")
LATE_BINDING = frozenset({"bind", "attach", "watch", "set_function", "middleware", "use", "register_hook"})
# Bolt's `App` takes its middleware only by this call: allowed on an App the same function just constructed.
REGISTRATION = frozenset({"middleware"})
MUTATORS = frozenset({"append", "extend", "insert", "add", "update", "setdefault"})


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _reaches_into(node: ast.expr) -> bool:
    """`x.attr` or `x.attr[k]` (an attribute of something), with `x` not `self`: another object's state."""
    inner = node.value if isinstance(node, ast.Subscript) else node
    return isinstance(inner, ast.Attribute) and _root(inner) not in (None, "self")


def late_changes(source: str) -> list[str]:
    """Every place in `source` that sets or mutates an attribute of an object other than `self`, or calls a
    late-binding method (`bind`, `attach`, `middleware`, …) on one, outside the handlers of the object it builds.

    `self` is an object managing its own state. A registration call is allowed on an object the same function just
    built (Bolt's `App` takes its middleware and listeners only that way). The one exception is a function that only
    runs at request time inside a builder (Bolt's error handler, which answers by changing the response Bolt hands
    it): it is marked by taking a `response` argument."""
    found: list[str] = []

    def visit(node: ast.AST, request_time: bool, built: frozenset[str]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            request_time = request_time or any(a.arg == "response" for a in node.args.args)
            built = frozenset(
                t.id
                for n in ast.walk(node)
                if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and _constructs(n.value)
                for t in n.targets
                if isinstance(t, ast.Name)
            )
        if not request_time:
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            found.extend(ast.unparse(t) for t in targets if _reaches_into(t) or _is_attribute_of_other(t))
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id == "setattr":
                    found.append(ast.unparse(node))
                elif isinstance(func, ast.Attribute) and _root(func) not in (None, "self"):
                    just_built = isinstance(func.value, ast.Name) and func.value.id in built
                    registers = func.attr in LATE_BINDING and not (func.attr in REGISTRATION and just_built)
                    if registers or (func.attr in MUTATORS and isinstance(func.value, ast.Attribute)):
                        found.append(ast.unparse(node))
        for child in ast.iter_child_nodes(node):
            visit(child, request_time, built)

    visit(ast.parse(source), False, frozenset())
    return found


def _constructs(call: ast.Call) -> bool:
    """A constructor call: `App(...)`, `slack_bolt.App(...)` (a class name), not a builder function's."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    return name[:1].isupper()


def _is_attribute_of_other(target: ast.expr) -> bool:
    return isinstance(target, ast.Attribute) and _root(target) not in (None, "self")


def test_the_finder_sees_every_late_change():
    late = """
def build():
    store = open_store()
    store.claim_lease = lease
    service.deps.kick = outbox.kick
    runtime = Runtime(role)
    runtime.tickets_every += 1
    gates = VaultControlGroups(client)
    gates.bind(kinds)
    store.watch(metrics.on_committed)
    metrics.active.set_function(count)
    app = build_app(ctx)
    app.middleware(checks)
    setattr(notifier, "home", render)
    store.claimed.append(claims)
    service.deps.trackers["jira"] = jira
"""
    assert late_changes(late) == [
        "store.claim_lease",
        "service.deps.kick",
        "runtime.tickets_every",
        "gates.bind(kinds)",
        "store.watch(metrics.on_committed)",
        "metrics.active.set_function(count)",
        "app.middleware(checks)",
        "setattr(notifier, 'home', render)",
        "store.claimed.append(claims)",
        "service.deps.trackers['jira']",
    ]


def test_the_finder_lets_objects_keep_their_own_state_and_builders_fill_their_locals():
    fine = """
class Runtime:
    def __post_init__(self):
        self._stopping = Event()

    def start(self):
        self._loop = Thread()
        self.outbox.start()

def build():
    checks = {"database": store.healthy}
    checks["anchor"] = service.anchor_up
    checks |= {"slack": known}
    sinks = []
    sinks.append(SyslogSink(url))
    app = App(client)
    app.middleware(checks)

    def on_error(error, body, response):
        response.status = 200
    return Runtime(app, sinks)
"""
    assert late_changes(fine) == []


def test_the_wiring_builds_each_object_once_complete():
    found = {path: late for path in WIRING if (late := late_changes((ROOT / path).read_text(encoding="utf-8")))}
    assert found == {}, f"pass these through the constructors instead (build in dependency order): {found}"
