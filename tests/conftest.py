"""Every test process sees 8 fake CPU devices; single-device runs use a 1-device mesh.

Random inputs come from the `rng` / `seed` fixtures: one session seed (COLLAPSE_TEST_SEED,
default 0; `random` draws a fresh one) mixed with the test's id, so a test draws the same
numbers whatever order or xdist worker runs it, and a failure prints the line that
replays it. Compilations are shared through a persistent XLA cache for the session, which
the tests' subprocesses (CLI runs, kill-and-resume) inherit through the environment.
"""

import os
import secrets
import shutil
import tempfile
import zlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One compilation cache per session, made empty by the process that starts pytest: a program
# compiled by one test (or one xdist worker, or a child process) is loaded by the next
# instead of compiled again. Workers and children inherit the folder through the
# environment; every `make test` starts cold.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _OWN_CACHE = tempfile.mkdtemp(prefix="collapse_jax_xla_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
else:
  _OWN_CACHE = None
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SEED_ENV = "COLLAPSE_TEST_SEED"


def _session_seed() -> int:
  value = os.environ.get(SEED_ENV, "0")
  if value == "random":
    value = str(secrets.randbelow(2**31))
    os.environ[SEED_ENV] = value  # xdist workers and child processes inherit the same one
  try:
    return int(value)
  except ValueError:
    raise pytest.UsageError(f"{SEED_ENV}={value!r}: give an integer, or 'random'.") from None


SESSION_SEED = _session_seed()


def pytest_report_header(config):
  return f"{SEED_ENV}={SESSION_SEED} (random test inputs; set it to replay a failure)"


@pytest.fixture
def seed(request) -> int:
  """This test's seed: the session seed mixed with the test's id (stable across runs)."""
  return zlib.crc32(f"{SESSION_SEED}:{request.node.nodeid}".encode())


@pytest.fixture
def rng(seed) -> np.random.Generator:
  return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
  outcome = yield
  report = outcome.get_result()
  if report.failed and "seed" in getattr(item, "funcargs", {}):
    report.sections.append((
        "random inputs",
        f"seed {item.funcargs['seed']}: replay with {SEED_ENV}={SESSION_SEED} pytest "
        f"'{item.nodeid}'"))


def pytest_unconfigure(config):
  if _OWN_CACHE:
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def devices():
  devs = jax.devices()
  assert len(devs) == 8, "tests expect 8 fake CPU devices (XLA_FLAGS set before jax import)"
  return devs
