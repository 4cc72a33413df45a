"""A check shared by the studies' end-to-end tests: what each stage read of the config."""

import os

from advbound.runtime import io, stages


def assert_declared_reads(study: stages.Study, workdir: str, config) -> dict[str, set[str]]:
  """The strict runner records in DIR/stages/<stage>.json the config sections the stage's body
  read (through a RecordingConfig). Each stage's reads must lie within what its stamp covers
  (its sections and those of the stages it runs after), the train stage must have read the data
  and models sections (and model, when the config has one), and every section of the config must be read by some stage (a section
  no stage reads is a setting that does nothing). Returns stage -> sections read."""
  allowed = stages.allowed_sections(study.stages)
  read = {}
  for stage in study.stages:
    record = io.read_json(os.path.join(workdir, "stages", f"{stage.name}.json"))
    read[stage.name] = set(record["reads"])
    assert read[stage.name] <= allowed[stage.name], (
        f"stage {stage.name} read {sorted(read[stage.name] - allowed[stage.name])} beyond its "
        "declaration")
  assert read[study.stages[0].name] >= {"data", "models"} | ({"model"} & set(config.keys()))
  assert set().union(*read.values()) == set(config.keys()), (
      sorted(set(config.keys()) - set().union(*read.values())))
  return read
