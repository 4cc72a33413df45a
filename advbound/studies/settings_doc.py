"""docs/settings.md: every config key of every study, from the declarations themselves.

  python -m advbound.studies.settings_doc > docs/settings.md

The shared sections (advbound/training/settings.py) come first, then each study's own sections
(the `Sub` fields of its `settings.Config`) and its other top-level keys. `tests/
settings_doc_test.py` fails when docs/settings.md differs from what this prints.
"""

from __future__ import annotations

import importlib

from advbound.config import schema
from advbound.training import settings as shared

STUDIES = (("decision_boundary", "He et al., decision boundary analysis"),
           ("region_defense", "Cao & Gong, region-based classification"),
           ("blind_spot", "the blind-spot study"),
           ("training_dynamics", "the training-dynamics study"))
_HEADER = ["| key | type | default | what |", "| --- | --- | --- | --- |"]


def markdown() -> str:
  """The whole of docs/settings.md."""
  lines = ["# Settings", "",
           "Every key a config may hold, generated from its declaration (`python -m "
           "advbound.studies.settings_doc > docs/settings.md`; how to add one: docs/design.md). "
           "`required` keys have no default; a bound or limit named by a word (`span`, `test`, "
           "...) is a property of the data: the pixel range, a split's size.", "",
           "## Shared by every study (`advbound/training/settings.py`)", ""]
  for path, section in (("data", shared.Data), ("model", shared.Model),
                        ("models.<variant>", shared.Train),
                        ("models.<variant> (imported)", shared.ImportedVariant),
                        ("eval", shared.Eval)):
    lines += [f"### `{path}`", "", *_HEADER, *section.table(path), ""]
  for name, title in STUDIES:
    config = importlib.import_module(f"advbound.studies.{name}.settings").Config
    lines += [f"## {title} (`advbound/studies/{name}/settings.py`)", ""]
    others = []
    for f in config.fields():
      check = f.metadata["check"]
      if isinstance(check, schema.Sub):
        lines += [f"### `{f.name}`", "", *_HEADER, *check.section.table(f.name), ""]
      elif f.name not in ("data", "model", "models", "eval"):
        others.append(f)
    if others:
      lines += ["### top level", "", *_HEADER]
      for f in others:
        default = "required" if f.default is schema.REQUIRED else repr(f.default)
        lines.append(f"| `{f.name}` | {f.metadata['check'].describe()} | {default} | "
                     f"{f.metadata['doc']} |")
      lines.append("")
  return "\n".join(lines)


if __name__ == "__main__":
  print(markdown(), end="")
