"""Collectives of a compiled program, read from its optimized HLO text: kind, bytes, group.

Bytes are those one device holds of the collective's result (all-gather: the gathered
array; reduce-scatter: the full input, as it is what moves). Async pairs count once, at
their `-start`.
"""

import dataclasses
import math
import re

import numpy as np

KINDS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
                "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8,
                "c128": 16, "f8e4m3fn": 1, "f8e5m2": 1}
_ARRAY = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([\d,]*)\]")
_OP = re.compile(r"=\s*(\(.*?\)|\S+)\s+(" + "|".join(KINDS) + r")(-start)?\(")


@dataclasses.dataclass(frozen=True)
class Collective:
  kind: str
  bytes: int
  group: int  # devices taking part in each group


def _array_bytes(text: str) -> list[int]:
  return [_DTYPE_BYTES[d] * math.prod(int(s) for s in dims.split(",") if s)
          for d, dims in _ARRAY.findall(text)]


def _split_tuple(shape: str) -> list[str]:
  """Top-level elements of a tuple shape '(a, (b, c), d)'."""
  inner, depth, cur, out = shape[1:-1], 0, "", []
  for ch in inner:
    depth += ch == "("
    depth -= ch == ")"
    if ch == "," and depth == 0:
      out.append(cur)
      cur = ""
    else:
      cur += ch
  return out + [cur] if cur.strip() else out


def _group_size(line: str, num_devices: int) -> int:
  m = re.search(r"replica_groups=\[(\d+),(\d+)\]<=", line)
  if m:
    return int(m.group(2))
  m = re.search(r"replica_groups=\{\{([\d,]*)\}", line)
  if m and m.group(1):
    return len(m.group(1).split(","))
  m = re.search(r"source_target_pairs=\{([^}]*)\}", line)
  if m:
    return 2
  return num_devices


def collectives(hlo_text: str, num_devices: int) -> list[Collective]:
  """Every collective in the module's computations, in order of appearance."""
  found = []
  for line in hlo_text.splitlines():
    m = _OP.search(line)
    if not m or "-done" in line.split("=")[0]:
      continue
    shape, kind, start = m.group(1), m.group(2), m.group(3)
    if start and shape.startswith("(") and kind in ("all-gather", "collective-permute"):
      parts = _split_tuple(shape)
      shape = parts[1] if len(parts) > 1 else shape  # (operand, output[, contexts])
    size = int(np.sum(_array_bytes(shape)))
    group = _group_size(line, num_devices)
    if kind == "reduce-scatter":
      size *= group
    found.append(Collective(kind, size, group))
  return found


def summary(found: list[Collective]) -> dict[str, dict]:
  """{kind: {'count', 'bytes'}} over a list of collectives."""
  out = {}
  for c in found:
    d = out.setdefault(c.kind, {"count": 0, "bytes": 0})
    d["count"] += 1
    d["bytes"] += c.bytes
  return out


def seconds(c: Collective, bandwidth: float) -> float:
  """Ring-algorithm lower bound of one collective over links of `bandwidth` bytes/s."""
  p = max(c.group, 1)
  if p == 1:
    return 0.0
  factor = {"all-reduce": 2 * (p - 1) / p, "collective-permute": 1.0}.get(c.kind, (p - 1) / p)
  return factor * c.bytes / bandwidth


_STABLEHLO_PRODUCT = re.compile(r"stablehlo\.(dot_general|convolution)\b")
_HLO_PRODUCT = re.compile(r"%(\S+) = \S+ (dot|convolution)\(([^)]*)\)")
_HLO_DEF = re.compile(r"^\s*(?:ROOT )?%(\S+) = \(?(\w+)\[")
_WIDE = ("f32", "f64")


def reduced_products(text: str) -> list[str]:
  """The dots and convolutions of float32 (or wider) operands that run at the backend's
  default precision (bf16 on TPU, TF32 on A100/H100), in lowered StableHLO or in compiled
  HLO text: each one's line, stripped. `collapse_jax.precision` says why they matter."""
  found = []
  if "stablehlo." in text:
    for line in text.splitlines():
      if _STABLEHLO_PRODUCT.search(line):
        operands = line.rsplit(" : (", 1)[-1]
        wide = re.search(r"x(" + "|".join(_WIDE) + r")>", operands.split(") ->")[0])
        if wide and "HIGHEST" not in line and "algorithm" not in line:
          found.append(line.strip())
    return found
  dtypes = dict(m.groups() for m in map(_HLO_DEF.match, text.splitlines()) if m)
  for line in text.splitlines():
    m = _HLO_PRODUCT.search(line)
    if not m:
      continue
    names = [a.strip().split()[-1].lstrip("%") for a in m.group(3).split(",") if a.strip()]
    wide = any(dtypes.get(n) in _WIDE for n in names)
    if wide and "operand_precision={highest,highest}" not in line and "algorithm=" not in line:
      found.append(line.strip())
  return found


# Instructions that launch no kernel of their own (or whose traffic is counted elsewhere:
# collectives go over the links, see `collectives`).
_NO_KERNEL = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "while",
              "conditional", "call", "after-all", "opt-barrier", "partition-id",
              "replica-id", "add-dependency", "send", "send-done", "recv", "recv-done",
              "all-reduce-done", "all-gather-done", "collective-permute-done",
              "async-done", "async-update", "copy-done"}
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*(\(.*?\)|\S+)\s+([\w\-]+)\((.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%([\w.\-]+)\s*\(.*\{\s*$")


def _call_operands(rest: str) -> list[str]:
  """Operand names of an instruction, from the text after its opening parenthesis."""
  depth, end = 1, len(rest)
  for i, ch in enumerate(rest):
    depth += (ch == "(") - (ch == ")")
    if depth == 0:
      end = i
      break
  return re.findall(r"%([\w.\-]+)", rest[:end])


def _result_bytes(shape: str, op: str) -> int:
  """Bytes of an instruction's result; a custom call's scratch (u8/s8 tuple elements:
  cuBLAS/cuDNN workspaces) is not traffic."""
  if op == "custom-call" and shape.startswith("("):
    return sum(_array_bytes(f"{d}[{dims}]")[0] for d, dims in _ARRAY.findall(shape)
               if d not in ("s8", "u8"))
  return sum(_array_bytes(shape))


def kernel_bytes(hlo_text: str) -> int:
  """The HBM traffic no kernel of an optimized (GPU) HLO module can avoid: for every
  kernel (a fusion, a cuBLAS/cuDNN custom call, an unfused op) in the computations that run
  as kernels (ENTRY, while bodies: each counted once), its operands' and results' bytes.
  What the cost model gives TPU programs; on GPU XLA reports none for library calls."""
  computations, current, fused = {}, None, set()
  for line in hlo_text.splitlines():
    m = _COMPUTATION.match(line)
    if m:
      current = computations.setdefault(m.group(1), [])
      continue
    if line.startswith("}"):
      current = None
    elif current is not None:
      current.append(line)
    fused.update(re.findall(r"(?:calls|to_apply)=%([\w.\-]+)", line))
  total = 0
  for name, lines in computations.items():
    if name in fused:
      continue
    shapes, parsed = {}, []
    for line in lines:
      m = _INSTR.match(line)
      if m:
        shapes[m.group(1)] = sum(_array_bytes(m.group(2)))
        parsed.append(m.groups())
    for _, shape, op, rest in parsed:
      if op in _NO_KERNEL or op.startswith(KINDS):
        continue
      total += _result_bytes(shape, op) + sum(shapes.get(o, 0) for o in _call_operands(rest))
  return total
