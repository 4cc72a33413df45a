"""docs/settings.md is what the declarations say (regenerate it with
`python -m advbound.studies.settings_doc > docs/settings.md`)."""

import os

from advbound.studies import settings_doc

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "settings.md")


def test_docs_settings_is_current():
  with open(DOC) as f:
    written = f.read()
  assert written == settings_doc.markdown(), (
      "docs/settings.md is stale: python -m advbound.studies.settings_doc > docs/settings.md")


def test_every_study_section_is_documented():
  text = settings_doc.markdown()
  for section in ("attack", "boundary", "radius", "evaluation", "divergence", "profiles",
                  "destruction"):
    assert f"### `{section}`" in text
  assert "`models.<variant>.guard.every`" in text  # nested sections follow their parent
