"""The NADE kernel's cache: a private directory, and only verified libraries of this user's loaded.

The compiler is stubbed by a copy of the library built once for the test run, so each case
runs in milliseconds; `test_a_truncated_library_is_rebuilt_in_a_new_process` runs the real
build path end to end in a subprocess.
"""

import ctypes
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from arjax.models import nade_native

HAS_COMPILER = shutil.which(os.environ.get("CXX", "g++")) is not None
pytestmark = pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler: the fused kernel cannot be built")
IS_ROOT = os.getuid() == 0
OTHER_UID = 4242
NAME = "nade_cpu_0123456789abcdef.so"


@pytest.fixture(scope="module")
def good_library() -> bytes:
  return pathlib.Path(nade_native._build()).read_bytes()


@pytest.fixture
def compiles(monkeypatch, good_library):
  """Replaces the compiler with a copy of the good library; returns the list of outputs written."""
  outputs = []

  def fake_compile(compiler, output):
    pathlib.Path(output).write_bytes(good_library)
    outputs.append(output)

  monkeypatch.setattr(nade_native, "_compile", fake_compile)
  return outputs


def _private(tmp_path) -> pathlib.Path:
  directory = tmp_path / "cache"
  directory.mkdir(mode=0o700)
  return directory


def _plant(directory: pathlib.Path, content: bytes, *, mode=0o700, digest_of: bytes | None = None):
  library = directory / NAME
  library.write_bytes(content)
  os.chmod(library, mode)
  if digest_of is not None:
    recorded = directory / f"{NAME}.sha256"
    recorded.write_text(hashlib.sha256(digest_of).hexdigest() + "\n")
    os.chmod(recorded, 0o600)
  return library


def _marker_library(tmp_path) -> tuple[bytes, pathlib.Path]:
  """A shared library whose constructor creates a marker file: proof that it was loaded."""
  marker = tmp_path / "constructor-ran"
  source = tmp_path / "planted.c"
  source.write_text('#include <stdio.h>\n__attribute__((constructor)) static void planted(void) {\n'
                    f'  FILE *f = fopen("{marker}", "w"); if (f) fclose(f);\n}}\n')
  built = tmp_path / "planted.so"
  compiler = shutil.which("cc") or shutil.which("gcc") or os.environ.get("CXX", "g++")
  subprocess.run([compiler, "-shared", "-fPIC", str(source), "-o", str(built)], check=True)
  return built.read_bytes(), marker


def test_a_verified_library_is_reused_without_a_build(tmp_path, compiles, good_library):
  directory = _private(tmp_path)
  first = nade_native._cached_library("g++", directory, NAME)
  assert len(compiles) == 1 and first.read_bytes() == good_library
  assert (directory / f"{NAME}.sha256").read_text().strip() == hashlib.sha256(good_library).hexdigest()
  assert nade_native._cached_library("g++", directory, NAME) == first and len(compiles) == 1


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped", "no_digest", "wrong_digest"])
def test_a_damaged_library_is_rebuilt_never_loaded(tmp_path, compiles, good_library, damage):
  directory = _private(tmp_path)
  content = {"truncated": good_library[:len(good_library) // 3], "empty": b"",
             "flipped": good_library[:1000] + bytes(b ^ 0xFF for b in good_library[1000:1004]) + good_library[1004:],
             "no_digest": good_library[:-1], "wrong_digest": good_library}[damage]
  digest_of = {"no_digest": None, "wrong_digest": b"another build"}.get(damage, good_library)
  _plant(directory, content, digest_of=digest_of)
  path = nade_native._cached_library("g++", directory, NAME)
  assert len(compiles) == 1
  assert path.read_bytes() == good_library
  ctypes.CDLL(str(path)).ArjaxNadeForward  # the rebuilt file loads and holds the kernel


def test_a_planted_library_writable_by_others_is_not_loaded(tmp_path, compiles, good_library):
  directory = _private(tmp_path)
  planted, marker = _marker_library(tmp_path)
  _plant(directory, planted, mode=0o666, digest_of=planted)  # a digest that matches: the mode refuses it
  path = nade_native._cached_library("g++", directory, NAME)
  assert len(compiles) == 1 and path.read_bytes() == good_library
  ctypes.CDLL(str(path))
  assert not marker.exists()


@pytest.mark.skipif(not IS_ROOT, reason="making a file of another user's needs root")
def test_a_planted_library_of_another_user_is_not_loaded(tmp_path, compiles, good_library):
  directory = _private(tmp_path)
  planted, marker = _marker_library(tmp_path)
  library = _plant(directory, planted, mode=0o755, digest_of=planted)
  os.chown(library, OTHER_UID, OTHER_UID)
  path = nade_native._cached_library("g++", directory, NAME)
  assert len(compiles) == 1 and path.read_bytes() == good_library
  ctypes.CDLL(str(path))
  assert not marker.exists()


def test_a_wide_directory_of_this_user_is_made_private(tmp_path):
  directory = tmp_path / "wide"
  directory.mkdir()
  os.chmod(directory, 0o777)
  assert nade_native._make_private(directory) == directory
  assert os.stat(directory).st_mode & 0o777 == 0o700
  new = nade_native._make_private(tmp_path / "new" / "cache")
  assert os.stat(new).st_mode & 0o777 == 0o700


def test_a_symlinked_directory_is_refused(tmp_path):
  target = tmp_path / "target"
  target.mkdir(mode=0o700)
  (tmp_path / "link").symlink_to(target)
  with pytest.raises(PermissionError, match="not a directory"):
    nade_native._make_private(tmp_path / "link")


@pytest.mark.skipif(not IS_ROOT, reason="making a directory of another user's needs root")
def test_a_temporary_directory_made_by_another_user_is_refused(tmp_path, monkeypatch):
  """Issue 18 item 2: `$TMPDIR/arjax-<uid>` made in advance by someone else is never used."""
  blocked = tmp_path / "blocked"
  blocked.write_text("a file where the cache directory should be")
  monkeypatch.setenv("ARJAX_CACHE_DIR", str(blocked / "arjax"))  # cannot be made: the fallback is next
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  planted = tmp_path / f"arjax-{os.getuid()}"
  planted.mkdir(mode=0o777)
  os.chown(planted, OTHER_UID, OTHER_UID)
  with pytest.warns(RuntimeWarning, match=f"belongs to uid {OTHER_UID}"):
    chosen = nade_native._private_cache_dir()
  assert chosen != planted and chosen.parent == tmp_path
  info = os.lstat(chosen)
  assert info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o700


def test_the_cache_key_follows_the_ffi_headers(tmp_path, monkeypatch):
  headers = tmp_path / "include"
  (headers / "xla" / "ffi" / "api").mkdir(parents=True)
  header = headers / "xla" / "ffi" / "api" / "ffi.h"
  header.write_text("// version 1\n")
  monkeypatch.setattr(nade_native.jax.ffi, "include_dir", lambda: str(headers))
  before = nade_native._cache_key("g++")
  header.write_text("// version 2\n")
  assert nade_native._cache_key("g++") != before


def test_a_truncated_library_is_rebuilt_in_a_new_process(tmp_path, good_library):
  """Through `available()`, in a process of its own: a truncated cached library (dlopen dies of
  SIGBUS on one) is rebuilt and the kernel registers. The build copies the good library."""
  cache = tmp_path / "cache"
  cache.mkdir(mode=0o700)
  good = tmp_path / "good.so"
  good.write_bytes(good_library)
  library = cache / f"nade_cpu_{nade_native._cache_key(os.environ.get('CXX', 'g++'))}.so"
  library.write_bytes(good_library[:len(good_library) // 2])
  (cache / f"{library.name}.sha256").write_text(hashlib.sha256(good_library).hexdigest() + "\n")
  probe = ("import shutil; from arjax.models import nade_native\n"
           f"nade_native._compile = lambda compiler, output: shutil.copyfile({str(good)!r}, output)\n"
           "assert nade_native.available(), nade_native.unavailable_reason(); print(nade_native._build())")
  env = {**os.environ, "ARJAX_CACHE_DIR": str(cache), "JAX_PLATFORMS": "cpu"}
  result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == str(library)
  assert library.read_bytes() == good_library
