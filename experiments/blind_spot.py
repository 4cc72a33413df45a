"""The blind-spot study (Zhang et al., "The Limitations of Adversarial Training and the
Blind-Spot Attack"), end to end, resumable stage by stage.

  python -m experiments.blind_spot --config=configs/blind_spot_quickstart.py --workdir=/tmp/bs

Stages: train the natural and the PGD-trained model -> distances of the test images to the
training set in embedding space, for the test set and each scale-and-shift of it (Figures 1-3,
5) -> per-class t-SNE + KDE divergence of train and test (Table 1) -> C&W L-inf from two starts
at every (alpha, beta) (Tables 2-3, Figure 4) -> scores and figures -> DIR/report.md and
DIR/results.json. Rerunning skips every stage whose settings and artifacts are unchanged
(advbound/studies/blind_spot/pipeline.py).
"""

from absl import logging

from experiments import common


def summary(out, workdir, config):
  logging.info("report: %s/report.md", workdir)
  print(f"report: {workdir}/report.md; results: {workdir}/results.json")
  from advbound import stats  # pylint: disable=g-import-not-at-top
  from advbound.studies.blind_spot import paper, protocol  # pylint: disable=g-import-not-at-top
  t1 = out["table1"]
  print(f"Table 1 ({out['dataset']}): KL {stats.format_estimate(t1['kl']['bootstrap'])}, over "
        f"t-SNE maps {stats.format_estimate(t1['kl']['seeds'])}; success "
        f"{stats.format_rate(t1['success'])}; accuracy {stats.format_rate(t1['accuracy'])}")
  for alpha, beta in protocol.pairs(config.study.alphas):
    key = paper.pair_key(alpha, beta)
    row = out["scale_shift"][key]
    print(f"  {key}: accuracy {stats.format_rate(row['accuracy_cell'])}, success at eps "
          f"{stats.format_rate(row['epsilon'])}, at alpha*eps "
          f"{stats.format_rate(row['alpha_epsilon'])}")


if __name__ == "__main__":
  common.run_study("advbound.studies.blind_spot.pipeline", summary,
                   no_only="it needs both study.attacked and study.extractors")
