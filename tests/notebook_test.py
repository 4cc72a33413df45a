"""Executes notebooks/colab_tpu.ipynb on CPU with configs/smoke.py (nbclient), so the notebook
cannot rot: its cells run in order, the study runs through the notebook's own helper, and the
report and figures it displays exist."""

import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "colab_tpu.ipynb")


def _with_parameters(nb, **values):
  """nb with its "parameters" cell's assignments replaced by `values` (each must exist)."""
  cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
  lines = cell.source.splitlines()
  for name, value in values.items():
    hits = [i for i, line in enumerate(lines) if line.startswith(f"{name} =")]
    assert len(hits) == 1, f"parameter {name} not in the notebook's parameters cell"
    lines[hits[0]] = f"{name} = {value!r}"
  cell.source = "\n".join(lines)
  return nb


def test_colab_notebook_runs_the_study_on_cpu(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  nb = _with_parameters(nb, INSTALL=False, MOUNT_DRIVE=False, WORKDIR_ROOT=str(tmp_path),
                        QUICKSTART_CONFIG="smoke.py", PAPER_CONFIG=None)
  env_cwd = {"metadata": {"path": ROOT}}
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                   resources=env_cwd)
  client.execute()
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
  assert not [o for o in outputs if o.get("output_type") == "error"]
  text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
  assert "CpuDevice" in text  # the devices cell
  shown = [o for o in outputs if o.get("output_type") == "display_data"]
  assert any("text/markdown" in o["data"] for o in shown)  # report.md
  assert any("image/png" in o["data"] for o in shown)  # the figures
  assert os.path.exists(tmp_path / "quickstart" / "results.json")
