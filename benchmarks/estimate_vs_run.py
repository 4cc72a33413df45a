"""--estimate against a measured run, per stage: the table WORKSPACE.md ("Issue 29") quotes.

  python -m benchmarks.estimate_vs_run RUN_DIR ESTIMATE_DIR

RUN_DIR: the workdir of a finished run (its DIR/stages/*.json records hold each stage's
seconds); ESTIMATE_DIR: a workdir where `--estimate` wrote estimate.json for the same config on
the same machine.
"""

import json
import os
import sys


def main(real: str, est: str) -> None:
  e = json.load(open(os.path.join(est, "estimate.json")))
  print("| stage | measured s | estimated s | ratio | probe s |")
  print("|---|---|---|---|---|")
  tr = te = 0.0
  for r in e["stages"]:
    rec = json.load(open(os.path.join(real, "stages", r["name"] + ".json")))
    m, p = rec["seconds"], r["projected_seconds"]
    tr, te = tr + m, te + p
    ratio = f"{p / m:.2f}" if m > 1 else "-"
    bound = " (at most)" if r["upper_bound"] else ""
    print(f"| {r['name']}{bound} | {m:.1f} | {p:.1f} | {ratio} | {r['probe_seconds']:.1f} |")
  print(f"| total | {tr:.1f} | {te:.1f} | {te / tr:.2f} | {e['estimate_seconds']:.1f} |")


if __name__ == "__main__":
  main(*sys.argv[1:3])
