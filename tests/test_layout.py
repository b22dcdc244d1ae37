"""The package's layers (scripts/imports.py): no import circle, no import from a lower layer
to a higher one, every module in a layer."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _imports_script():
  spec = importlib.util.spec_from_file_location("imports", os.path.join(ROOT, "scripts",
                                                                        "imports.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_no_circle_and_no_upward_import():
  imports = _imports_script()
  graph = imports.import_graph(ROOT)
  assert "collapse_jax.loop.recursive" in graph and graph["collapse_jax.loop.recursive"]
  assert imports.circles(graph) == []
  assert imports.upward(graph) == []


def test_checker_sees_a_circle_and_an_upward_import(tmp_path):
  """The checks can fail: a kernel importing the loop is both an upward import and, with the
  loop importing kernels, a circle."""
  imports = _imports_script()
  pkg = tmp_path / "collapse_jax"
  (pkg / "kernels").mkdir(parents=True)
  (pkg / "loop").mkdir()
  for f in ("__init__.py", "kernels/__init__.py", "loop/__init__.py"):
    (pkg / f).write_text("")
  (pkg / "kernels" / "knn.py").write_text("def f():\n  from collapse_jax.loop import run\n")
  (pkg / "loop" / "run.py").write_text("from collapse_jax.kernels import knn\n")
  (pkg / "stray.py").write_text("")
  graph = imports.import_graph(str(tmp_path))
  assert graph["collapse_jax.loop.run"] == {"collapse_jax.kernels.knn"}
  assert imports.circles(graph) == [["collapse_jax.kernels.knn", "collapse_jax.loop.run"]]
  assert ("collapse_jax.kernels.knn", "collapse_jax.loop.run") in imports.upward(graph)
  assert ("collapse_jax.stray", "(in no layer)") in imports.upward(graph)
