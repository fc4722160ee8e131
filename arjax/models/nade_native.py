"""NADE's fused CPU kernel: `nade_cpu.cc` as XLA FFI custom calls, with its backward pass.

`nade_conditionals_fused(x, W, c, V, b)` computes exactly what
`nade_kernel.nade_conditionals` computes (same arguments, same result up to float
rounding), on the CPU backend only. The C++ source ships with the package and is compiled
on first use with the system's C++ compiler (`$CXX`, default `g++`; ~5 s) into
`$ARJAX_CACHE_DIR` (default `~/.cache/arjax`; `$TMPDIR/arjax-<uid>` where that cannot be
used), keyed by the source, the flags, the compiler, jax's version, the content of jaxlib's
FFI headers and the CPU, so a cache shared between machines stays valid. The directory must
be this user's with mode 0700 (one of theirs is narrowed to it; another user's is refused),
and a library is loaded only when it is a regular file of this user's that no one else can
write and its sha256 matches the one recorded beside it at build time; anything else is
rebuilt, never loaded.
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
import stat
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


def _headers_digest() -> bytes:
  """sha256 over jaxlib's FFI headers (names and contents): the ABI the library is built against."""
  include = pathlib.Path(jax.ffi.include_dir())
  digest = hashlib.sha256()
  for header in sorted(p for p in include.rglob("*") if p.is_file()):
    digest.update(str(header.relative_to(include)).encode() + b"\0" + header.read_bytes() + b"\0")
  return digest.digest()


def _cache_key(compiler: str) -> str:
  key = hashlib.sha256()
  for part in (SOURCE.read_bytes(), " ".join(FLAGS).encode(), compiler.encode(), jax.__version__.encode(),
               _headers_digest(), _cpu_signature().encode()):
    key.update(hashlib.sha256(part).digest())  # fixed-length parts: no two splits hash alike
  return key.hexdigest()[:16]


def _make_private(directory: pathlib.Path) -> pathlib.Path:
  """`directory`, created if missing, once it is a real directory this user owns with mode 0700.

  A directory of this user's with a wider mode is narrowed to 0700; one that is not a
  directory (a symlink included) or belongs to another user raises PermissionError, as
  does one this process cannot write.
  """
  directory.mkdir(mode=0o700, parents=True, exist_ok=True)
  info = os.lstat(directory)
  if not stat.S_ISDIR(info.st_mode):
    raise PermissionError(f"{directory} is not a directory (a symlink or a file)")
  if info.st_uid != os.getuid():
    raise PermissionError(f"{directory} belongs to uid {info.st_uid}, not to this user (uid {os.getuid()})")
  if stat.S_IMODE(info.st_mode) != 0o700:
    os.chmod(directory, 0o700)
  if not os.access(directory, os.W_OK | os.X_OK):
    raise PermissionError(f"{directory} is not writable")
  return directory


def _private_cache_dir() -> pathlib.Path:
  """The cache directory, private to this user (`_make_private`).

  `$ARJAX_CACHE_DIR` (or `~/.cache/arjax`) when it can be made private, else
  `$TMPDIR/arjax-<uid>` (e.g. for a read-only home), else a new private directory made by
  `tempfile.mkdtemp`, with a warning: a directory that another user owns or can write is
  never used, since a library found there would be loaded into this process.
  """
  reasons = []
  for directory in (_cache_dir(), pathlib.Path(tempfile.gettempdir()) / f"arjax-{os.getuid()}"):
    try:
      return _make_private(directory)
    except OSError as error:
      reasons.append(str(error))
  fresh = pathlib.Path(tempfile.mkdtemp(prefix=f"arjax-{os.getuid()}-"))  # mode 0700, ours
  warnings.warn(f"arjax: no private cache directory for NADE's CPU kernel ({'; '.join(reasons)}); "
                f"building it in {fresh} for this process", RuntimeWarning, stacklevel=2)
  return fresh


def _sha256_file(handle) -> str:
  digest = hashlib.sha256()
  for block in iter(lambda: handle.read(1 << 20), b""):
    digest.update(block)
  return digest.hexdigest()


def _trusted_file(path: pathlib.Path):
  """An open binary handle on `path` if it is a regular file (not a symlink) of this user's that
  no one else can write, else None."""
  try:
    handle = open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
  except OSError:
    return None
  info = os.fstat(handle.fileno())
  if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
    handle.close()
    return None
  return handle


def _is_verified(library: pathlib.Path) -> bool:
  """True when `library` and its digest file `<library>.sha256` are trusted (`_trusted_file`)
  and the library's sha256 is the one recorded when it was built: a truncated, empty,
  modified or foreign file is never loaded (dlopen of a truncated library dies of SIGBUS)."""
  recorded_handle = _trusted_file(library.with_name(library.name + ".sha256"))
  if recorded_handle is None:
    return False
  with recorded_handle:
    recorded = recorded_handle.read(200).decode("ascii", "replace").strip()
  handle = _trusted_file(library)
  if handle is None:
    return False
  with handle:
    return len(recorded) == 64 and _sha256_file(handle) == recorded


def _compile(compiler: str, output: pathlib.Path) -> None:
  result = subprocess.run([compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(output)],
                          capture_output=True, text=True, timeout=300)
  if result.returncode != 0:
    raise RuntimeError(f"{compiler} failed to build {SOURCE.name}:\n{result.stderr[-2000:]}")


def _cached_library(compiler: str, directory: pathlib.Path, name: str) -> pathlib.Path:
  """`directory/name`, verified (`_is_verified`), or else (re)built there with its digest.

  Built aside in a temporary file and moved into place (atomic), library first and its
  digest second, so a reader sees either a complete pair or a mismatch that it rebuilds.
  """
  path = directory / name
  if _is_verified(path):
    return path
  with tempfile.TemporaryDirectory(dir=directory) as tmp:
    built = pathlib.Path(tmp) / name
    _compile(compiler, built)
    os.chmod(built, 0o700)
    with open(built, "rb") as handle:
      digest = _sha256_file(handle)
    recorded = pathlib.Path(tmp) / f"{name}.sha256"
    recorded.write_text(digest + "\n")
    os.chmod(recorded, 0o600)
    os.replace(built, path)
    os.replace(recorded, directory / f"{name}.sha256")
  return path


@functools.cache
def _build() -> str:
  """Compiles the kernel (once per process and cache key); returns the verified library's path."""
  compiler = os.environ.get("CXX", "g++")
  if shutil.which(compiler) is None:
    raise RuntimeError(f"no C++ compiler {compiler!r} on PATH (set CXX or install g++)")
  return str(_cached_library(compiler, _private_cache_dir(), f"nade_cpu_{_cache_key(compiler)}.so"))


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
