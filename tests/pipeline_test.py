"""End-to-end smoke test of the pipeline on a tiny config: every artifact and the report exist
and agree, a second run recomputes nothing, a changed setting reruns only what depends on it,
and a run killed mid-stage resumes to the same results as an uninterrupted run."""

import os

import numpy as np
import pytest

from advbound import boundary, stats
from advbound.runtime import io

from advbound.studies.decision_boundary import pipeline


def _config(config):
  config.attack.num_images = config.attack.batch_size = 6
  config.attack.cw.max_iterations = 10
  config.attack.names = ("optbrittle", "optmargin", "fgsm")
  config.region.update(dict(validation_images=10, num_samples=10, measurement_samples=50,
                            certify_estimate=50, attacks=("fgsm", "optbrittle", "optmargin")))
  config.boundary.update(dict(num_directions=20, step=0.1, chunk_images=3, method="fast",
                              examples=("fgsm", "optbrittle", "optmargin")))
  config.detect.attacks = ("fgsm", "optbrittle", "optmargin")
  config.detect.train_attacks = ("optbrittle", "optmargin")
  return config


def _tables(out):
  return {k: out[k] for k in ("table1", "table2", "table3", "table4")}


def test_end_to_end_resume_and_reuse(tmp_path, monkeypatch, tiny_config):
  config = _config(tiny_config)
  killed = tmp_path / "killed"
  real = boundary.search
  calls = {"n": 0}

  def dying(*args, **kwargs):  # the boundary stage dies on its fourth chunk
    calls["n"] += 1
    if calls["n"] == 4:
      raise RuntimeError("simulated kill")
    return real(*args, **kwargs)

  monkeypatch.setattr(boundary, "search", dying)
  with pytest.raises(RuntimeError, match="simulated kill"):
    pipeline.run(config, str(killed))
  assert (killed / "stages" / "region.json").exists()
  assert not (killed / "stages" / "boundary.json").exists()
  monkeypatch.setattr(boundary, "search", real)
  out = pipeline.run(config, str(killed))

  # artifacts and report
  for rel in ("report.md", "results.json", "attacks/table1.json", "region/table2.json",
              "boundary/summary.json", "detect/tables.json"):
    assert (killed / rel).exists(), rel
  for rel in out["figures"]:
    assert (killed / rel).stat().st_size > 1000, rel
  t1 = out["table1"]["natural"]
  assert set(t1) == {"optbrittle", "optmargin", "fgsm"}
  assert all(0.0 <= r["success_rate"] <= 1.0 for r in t1.values())
  assert set(out["table2"]["natural"]) >= {"point", "region"}
  assert set(out["table2"]["natural"]["region"]) == {"benign", "fgsm", "optbrittle", "optmargin"}
  for attack, row in out["table3"]["natural"].items():
    assert set(row) >= {"false_positive", "false_negative", "worst_case_accuracy"}
    assert set(row["false_negative"]) == {"optbrittle", "optmargin"}
    for rate in [row["false_positive"], *row["false_negative"].values()]:
      assert rate is None or 0.0 <= rate <= 1.0
  with np.load(killed / "attacks" / "natural" / "optbrittle.npz") as f:
    assert t1["optbrittle"]["success_rate"] == pytest.approx(f["success"].mean())
    # the count and denominator behind the rate, from the attack's own artifact
    assert (t1["optbrittle"]["successes"], t1["optbrittle"]["n"]) == (
        int(f["success"].sum()), len(f["success"]))
  assert t1["optbrittle"]["low"] <= t1["optbrittle"]["success_rate"] <= t1["optbrittle"]["high"]
  md = (killed / "report.md").read_text()
  assert "Table 3" in md and "74.1% (" in md  # paper: MNIST natural, OPTBRITTLE-trained FN
  assert "100.0% (inside)" in md or "100.0% (outside)" in md  # the paper's Table 1, marked
  assert "RMS 0.0732" in md
  assert "## The paper's claims" in md and stats.BY_CONSTRUCTION in md
  for v, m in out["models"].items():  # the models' rates with their denominators
    cell = out["model_cells"][v]["test_accuracy"]
    assert cell["n"] == m["test_examples"] and cell["rate"] == pytest.approx(m["test_accuracy"])

  # a second run recomputes nothing
  records = {s: os.path.getmtime(killed / "stages" / f"{s}.json") for s in pipeline.STAGES}
  again = pipeline.run(config, str(killed))
  assert {s: os.path.getmtime(killed / "stages" / f"{s}.json") for s in pipeline.STAGES} == records
  assert _tables(again) == _tables(out)

  # the same results as an uninterrupted run, each stage having read only what it declares
  fresh = pipeline.run(config, str(tmp_path / "fresh"))
  assert _tables(fresh) == _tables(out)
  import study_reads  # pylint: disable=g-import-not-at-top
  study_reads.assert_declared_reads(pipeline.STUDY, str(tmp_path / "fresh"), config)

  # a changed detect setting reruns detect and report only
  config.detect.steps = 25
  pipeline.run(config, str(killed))
  now = {s: os.path.getmtime(killed / "stages" / f"{s}.json") for s in pipeline.STAGES}
  assert [s for s in pipeline.STAGES if now[s] != records[s]] == ["detect", "report"]

  # a corrupted artifact is detected and its stage recomputed
  (killed / "region" / "table2.json").write_text("{broken")
  pipeline.run(config, str(killed))
  assert io.read_json(str(killed / "region" / "table2.json"))["table2"] == out["table2"]
