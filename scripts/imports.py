"""The package's import graph: files, arrows, floors, circles and imports against the layers.

  python scripts/imports.py            # the summary; exit 1 on a circle or an upward import
  python scripts/imports.py --arrows   # every arrow, with the layers at both ends

Reads `collapse_jax/` with `ast` (nothing is imported), so it runs without the package's
dependencies. tests/test_layout.py holds the package to it.
"""

import argparse
import ast
import os
import sys

PACKAGE = "collapse_jax"

# Lowest first. A module may import its own layer or any below it, never one above. A name
# is matched by its longest prefix ("collapse_jax.loop" covers collapse_jax.loop.report).
LAYERS = (
    ("infra", ("xla_flags", "precision", "errors", "chips", "platform", "sharding", "images",
               "logs", "workdir", "checkpoint", "distributed", "preemption", "cli")),
    ("base", ("kernels", "data", "models")),
    ("config", ("config_lib",)),
    ("components", ("diffusion", "metrics", "encoders")),
    ("generators", ("generators",)),
    ("loop", ("loop",)),
    ("study", ("study",)),
    ("plan", ("plan",)),
)


def module_files(root: str) -> dict[str, str]:
  """Dotted module name -> path, for every .py under root/PACKAGE."""
  out = {}
  for dirpath, _, names in os.walk(os.path.join(root, PACKAGE)):
    for name in names:
      if name.endswith(".py"):
        path = os.path.join(dirpath, name)
        parts = os.path.relpath(path, root)[:-3].split(os.sep)
        if parts[-1] == "__init__":
          parts = parts[:-1]
        out[".".join(parts)] = path
  return out


def _targets(node: ast.AST, modules: dict[str, str]) -> list[str]:
  """The package modules one import statement reaches (`from a import b` reaches a.b when
  b is a module, else a)."""
  if isinstance(node, ast.Import):
    return [a.name for a in node.names if a.name in modules]
  if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
    subs = [f"{node.module}.{a.name}" for a in node.names]
    found = [s for s in subs if s in modules]
    return found + ([node.module] if len(found) < len(subs) else [])
  return []


def import_graph(root: str) -> dict[str, set[str]]:
  """module -> the package modules it imports anywhere in its file (function bodies too:
  a deferred import is still a dependency)."""
  modules = module_files(root)
  graph = {}
  for name, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    graph[name] = {t for n in ast.walk(tree) for t in _targets(n, modules) if t != name}
  return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan), each sorted."""
  index, low, stack, on, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(sorted(comp))

  sys.setrecursionlimit(10_000)
  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def floors(graph: dict[str, set[str]]) -> dict[str, int]:
  """Longest import chain below each module (0: imports nothing of the package); the
  modules of a circle share one floor."""
  comp_of = {v: i for i, c in enumerate(circles(graph)) for v in c}
  memo: dict[str, int] = {}

  def depth(v, seen=()):
    if v not in memo:
      same = {w for w in graph if comp_of.get(w, w) == comp_of.get(v, v)}
      below = {w for u in same for w in graph[u]} - same
      memo[v] = 1 + max((depth(w) for w in below), default=-1)
    return memo[v]

  return {v: depth(v) for v in graph}


def rooms(graph: dict[str, set[str]]) -> dict[str, set[str]]:
  """The same graph with each subpackage as one room (top-level modules stay rooms)."""
  def room(m):
    parts = m.split(".")
    return ".".join(parts[:2])

  out: dict[str, set[str]] = {}
  for v, ws in graph.items():
    out.setdefault(room(v), set()).update(room(w) for w in ws)
  return {v: ws - {v} for v, ws in out.items()}


def layer_of(module: str) -> tuple[int, str] | None:
  """(rank, layer name) of a module by its longest matching prefix; None for the package
  root (collapse_jax/__init__.py)."""
  rest = module.split(".")[1:]
  for depth in range(len(rest), 0, -1):
    head = ".".join(rest[:depth])
    for rank, (layer, names) in enumerate(LAYERS):
      if head in names:
        return rank, layer
  return None


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
  """Imports from a lower layer to a higher one, and modules no layer names."""
  bad = []
  for v, ws in sorted(graph.items()):
    lv = layer_of(v)
    if lv is None and v != PACKAGE:
      bad.append((v, "(in no layer)"))
      continue
    for w in sorted(ws):
      lw = layer_of(w)
      if lv is not None and lw is not None and lw[0] > lv[0]:
        bad.append((v, w))
  return bad


def summary(graph: dict[str, set[str]]) -> str:
  """Files, arrows, floors and circles, for files and for rooms."""
  lines = []
  for what, g in (("files", graph), ("rooms", rooms(graph))):
    fl = floors(g)
    arrows = sum(len(ws) for ws in g.values())
    cs = circles(g)
    lines.append(f"{what}: {len(g)} on {max(fl.values()) + 1} floors, {arrows} arrows, "
                 f"{len(cs)} circles" + "".join(f"\n  circle: {' <-> '.join(c)}" for c in cs))
  return "\n".join(lines)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))), help="the repository root (holds collapse_jax/)")
  parser.add_argument("--arrows", action="store_true", help="print every arrow")
  args = parser.parse_args()
  graph = import_graph(args.root)
  print(summary(graph))
  if args.arrows:
    for v in sorted(graph):
      for w in sorted(graph[v]):
        print(f"  {v} [{(layer_of(v) or (0, '-'))[1]}] -> {w} [{(layer_of(w) or (0, '-'))[1]}]")
  bad = upward(graph)
  for v, w in bad:
    print(f"upward import: {v} -> {w}")
  return 1 if bad or circles(graph) else 0


if __name__ == "__main__":
  sys.exit(main())
