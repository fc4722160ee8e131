"""What a run records about itself: the code (git commit), the machine, and atomic JSON files."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess

import jax


def git_commit() -> str | None:
  if os.environ.get("ARJAX_GIT_COMMIT"):  # set by scripts that run a copy of the tree without .git
    return os.environ["ARJAX_GIT_COMMIT"]
  here = pathlib.Path(__file__).parent
  try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                            cwd=here, timeout=5).stdout.strip()
    # Uncommitted changes to tracked files: the commit alone does not say what ran.
    changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=here, timeout=5).returncode
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ("-dirty" if changed else "")


def device_description() -> str:
  device = jax.devices()[0]
  kind = device.device_kind if device.platform != "cpu" else platform.processor() or platform.machine()
  cpu_name = _cpu_name() if device.platform == "cpu" else ""
  return f"{device.platform}: {jax.device_count()}× {kind}{' (' + cpu_name + ')' if cpu_name else ''}"


def _cpu_name() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
  except OSError:
    pass
  return ""


def write_json(path: pathlib.Path, value) -> None:
  """Writes `value` as JSON atomically, so an interrupted run never leaves a half-written file."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(value, indent=2) + "\n")
  tmp.replace(path)
