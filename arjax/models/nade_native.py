"""NADE's fused CPU kernel: `nade_cpu.cc` as XLA FFI custom calls, with its backward pass.

`nade_conditionals_fused(x, W, c, V, b)` computes exactly what
`nade_kernel.nade_conditionals` computes (same arguments, same result up to float
rounding), on the CPU backend only. The C++ source ships with the package and is compiled
on first use with the system's C++ compiler (`$CXX`, default `g++`; ~5 s) into
`$ARJAX_CACHE_DIR` (default `~/.cache/arjax`; the temporary directory where that is
not writable), keyed by the source, the flags, the jaxlib headers and the CPU, so a
cache shared between machines stays valid.
`available()` says whether it could be built; `NADE(kernel="auto")` uses it on CPUs when it
can and falls back to the chunked XLA kernel, with one warning, when it cannot.
`ARJAX_NADE_THREADS` caps its threads (default: the CPUs this process may use).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
import warnings

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["available", "nade_conditionals_fused", "unavailable_reason"]

SOURCE = pathlib.Path(__file__).with_name("nade_cpu.cc")
CHUNK = 16  # positions between the saved activations (the backward pass recomputes a chunk)
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "-std=c++17",
         "-shared", "-fPIC")  # no -ffast-math: NaN and Inf keep their meaning
_TARGETS = {"forward": "ArjaxNadeForward", "backward": "ArjaxNadeBackward"}


def _cache_dir() -> pathlib.Path:
  if os.environ.get("ARJAX_CACHE_DIR"):
    return pathlib.Path(os.environ["ARJAX_CACHE_DIR"])
  return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "arjax"


def _cpu_signature() -> str:
  try:  # -march=native: a library built for one CPU may not run on another
    with open("/proc/cpuinfo") as f:
      return next((line for line in f if line.startswith("flags")), platform.processor())
  except OSError:
    return platform.processor()


@functools.cache
def _build() -> str:
  """Compiles the kernel (once per process and cache key); returns the library's path."""
  compiler = os.environ.get("CXX", "g++")
  if shutil.which(compiler) is None:
    raise RuntimeError(f"no C++ compiler {compiler!r} on PATH (set CXX or install g++)")
  include = jax.ffi.include_dir()
  key = hashlib.sha256()
  for part in (SOURCE.read_bytes(), " ".join(FLAGS).encode(), compiler.encode(), jax.__version__.encode(),
               _cpu_signature().encode()):
    key.update(part)
  name = f"nade_cpu_{key.hexdigest()[:16]}.so"
  path = _cache_dir() / name
  if not path.exists():
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"{path.parent} is not writable")
    except OSError:  # e.g. a read-only home: build in the temporary directory instead
      path = pathlib.Path(tempfile.gettempdir()) / f"arjax-{os.getuid()}" / name
      path.parent.mkdir(parents=True, exist_ok=True)
  if not path.exists():
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:  # built aside, then moved: atomic
      built = pathlib.Path(tmp) / path.name
      result = subprocess.run([compiler, *FLAGS, f"-I{include}", str(SOURCE), "-o", str(built)],
                              capture_output=True, text=True, timeout=300)
      if result.returncode != 0:
        raise RuntimeError(f"{compiler} failed to build {SOURCE.name}:\n{result.stderr[-2000:]}")
      os.replace(built, path)
  return str(path)


@functools.cache
def _register() -> None:
  library = ctypes.cdll.LoadLibrary(_build())
  for name, symbol in _TARGETS.items():
    jax.ffi.register_ffi_target(f"arjax_nade_{name}", jax.ffi.pycapsule(getattr(library, symbol)),
                                platform="cpu")


@functools.cache
def unavailable_reason() -> str | None:
  """None when the fused kernel is built and registered, else why it is not."""
  try:
    _register()
  except Exception as error:  # noqa: BLE001 - any failure means "use the XLA kernel"
    return f"{type(error).__name__}: {error}"
  return None


def available() -> bool:
  return unavailable_reason() is None


@functools.cache
def warn_unavailable() -> None:
  warnings.warn(f"arjax: NADE's fused CPU kernel is unavailable ({unavailable_reason()}); using the "
                "chunked XLA kernel, ~3x slower to train on CPU", RuntimeWarning, stacklevel=3)


def _forward(x, W, c, V, b):
  """-> params `[B, D, P]` and the activations at every CHUNK-th position `[B, K, H]`."""
  B, D = x.shape
  H, P = W.shape[1], V.shape[2]
  c = jnp.broadcast_to(c, (B, H))  # the kernel takes one hidden bias per example
  out = (jax.ShapeDtypeStruct((B, D, P), jnp.float32),
         jax.ShapeDtypeStruct((B, -(-D // CHUNK), H), jnp.float32))
  return jax.ffi.ffi_call("arjax_nade_forward", out, vmap_method="sequential")(
      x, W, c, V, b, chunk=np.int64(CHUNK))


@jax.custom_vjp
def nade_conditionals_fused(x, W, c, V, b):
  """NADE output parameters `[B, D, P]` for every position; shapes as in
  `nade_kernel.nade_conditionals` (c `[H]` or `[B, H]`), float32, CPU backend only.
  Differentiable in reverse mode; forward mode is unsupported."""
  _register()
  return _forward(x, W, c, V, b)[0]


def _fused_fwd(x, W, c, V, b):
  _register()
  params, carries = _forward(x, W, c, V, b)
  return params, (x, W, c, V, carries)


def _fused_bwd(residuals, g):  # g = dL/dparams [B, D, P]
  x, W, c, V, carries = residuals
  B, D = x.shape
  H, P = W.shape[1], V.shape[2]
  out = (jax.ShapeDtypeStruct((B, D), jnp.float32), jax.ShapeDtypeStruct((D, H), jnp.float32),
         jax.ShapeDtypeStruct((B, H), jnp.float32), jax.ShapeDtypeStruct((D, H, P), jnp.float32))
  dx, dW, dc, dV = jax.ffi.ffi_call("arjax_nade_backward", out, vmap_method="sequential")(
      x, W, V, carries, g.astype(jnp.float32), chunk=np.int64(CHUNK))
  # dc comes per example [B, H]; a shared bias [H] gets their sum. db = sum over the batch of g.
  return dx, dW, dc.sum(0) if c.ndim == 1 else dc, dV, g.sum(0)


nade_conditionals_fused.defvjp(_fused_fwd, _fused_bwd)
