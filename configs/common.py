"""Defaults shared by the configs (data only: scalars, strings, tuples, ConfigDicts)."""

from ml_collections import config_dict


def data(name: str, source: str, path: str = "") -> config_dict.ConfigDict:
  """data.source: tfds | embedded | npz; data.path: file or glob for npz (may hold '{split}');
  data.data_dir: the tfds data directory (None: $TFDS_DATA_DIR or ~/tensorflow_datasets);
  data.validation_size: the hold-out carved from a train split (None: 5,000; ImageNet 50)."""
  return config_dict.ConfigDict(dict(name=name, source=source, path=path, seed=0,
                                     data_dir=config_dict.placeholder(str),
                                     validation_size=config_dict.placeholder(int)))


def pgd(epsilon: float, step_size: float, num_steps: int) -> config_dict.ConfigDict:
  return config_dict.ConfigDict(dict(epsilon=epsilon, step_size=step_size, num_steps=num_steps,
                                     random_start=True))


def train(**overrides) -> config_dict.ConfigDict:
  """Settings of one model variant's training run."""
  cfg = config_dict.ConfigDict(dict(
      seed=0,
      num_steps=1000,
      batch_size=128,
      optimizer="adam",         # adam | sgd
      learning_rate=1e-3,
      momentum=0.9,             # sgd only
      nesterov=False,           # sgd only
      weight_decay=0.0,         # L2 term added to the gradient
      schedule="constant",      # constant | piecewise | cosine | onecycle
      schedule_boundaries=(0.5, 0.75),   # piecewise: fractions of num_steps
      schedule_factors=(0.1, 0.01),      # piecewise: lr multipliers from each boundary on
      warmup_fraction=0.0,      # cosine / onecycle
      augment="none",           # none | crop_flip
      adversarial=False,        # train on PGD examples of `attack`
      attack=pgd(0.3, 0.01, 40),   # adversarial only; epsilon_warmup_fraction added below
      log_every=100,
      checkpoint_every=500,
  ))
  # Linear ramp of the training epsilon from 0 over this fraction of the run (0: none).
  cfg.attack.epsilon_warmup_fraction = 0.0
  attack = overrides.pop("attack", None)
  if attack is not None:
    cfg.attack.update(attack)
  cfg.update(overrides)
  return cfg


def evaluation(pgd_cfg: config_dict.ConfigDict, pgd_examples: int, *,
               autoattack_examples: int | None = None) -> config_dict.ConfigDict:
  """Test-set evaluation: clean accuracy on all test images, PGD on the first pgd_examples,
  and, with autoattack_examples, AutoAttack (standard, L-inf, PGD's epsilon) on the first that
  many."""
  out = config_dict.ConfigDict(dict(seed=0, batch_size=500, pgd_examples=pgd_examples,
                                    pgd=pgd_cfg))
  if autoattack_examples:
    out.autoattack = config_dict.ConfigDict(dict(version="standard", norm="linf",
                                                 epsilon=pgd_cfg.epsilon,
                                                 examples=autoattack_examples))
  return out


def attack(*, num_images: int, batch_size: int, binary_search_steps: int,
           max_iterations: int, pool: int | None = None,
           table_images: int | None = None) -> config_dict.ConfigDict:
  """He et al.'s attack study: the named attacks on `num_images` seeded test images that every
  model classifies correctly, drawn from the first `pool` test images (None: all). Tables 1
  and 2 report on the first `table_images` of them (None: all); the boundary classifier
  (detect) uses all. `cw` overrides the CW-based attacks' paper settings."""
  return config_dict.ConfigDict(dict(
      names=("optbrittle", "optmargin", "optstrong", "fgsm"),
      num_images=num_images, seed=0, batch_size=batch_size,
      pool=config_dict.placeholder(int) if pool is None else pool,
      table_images=config_dict.placeholder(int) if table_images is None else table_images,
      cw=config_dict.ConfigDict(dict(binary_search_steps=binary_search_steps,
                                     max_iterations=max_iterations))))


def boundary(*, num_directions: int, both_signs: bool, step: float, max_distance: float,
             region_radius: float, method: str = "scan", batch_size: int = 4096,
             chunk_images: int = 10) -> config_dict.ConfigDict:
  """He et al.'s boundary study: distances along random orthogonal directions on a grid
  step, 2*step, ..., max_distance; region_radius is the region classifier's cube half-width
  (for the figures' reference line); examples are the attacks whose outputs are analysed."""
  return config_dict.ConfigDict(dict(
      num_directions=num_directions, both_signs=both_signs, seed=0, step=step,
      max_distance=max_distance, method=method, batch_size=batch_size,
      chunk_images=chunk_images, region_radius=region_radius,
      examples=("fgsm", "optbrittle", "optmargin", "optstrong")))


def region(*, radius: float, step: float, validation_images: int, certify_sigma: float,
           num_samples: int = 100, measurement_samples: int = 10_000,
           batch_size: int = 4096) -> config_dict.ConfigDict:
  """Region classification (Cao & Gong): `radius` is the cube half-width of He et al.'s Table 2
  (Cao & Gong's learned values); Algorithm 1 also learns one from `step` on the first
  `validation_images` of the validation split. Certification: Gaussian sigma and the cube
  (half-width `radius`), num_select / num_estimate samples, one-sided level alpha."""
  return config_dict.ConfigDict(dict(
      radius=radius, step=step, initial=0.0, num_samples=num_samples,
      max_radius=config_dict.placeholder(float),  # Algorithm 1 stops here (None: the range)
      validation_images=validation_images, seed=0, batch_size=batch_size,
      attacks=("fgsm", "optbrittle", "optmargin"),
      certify_sigma=certify_sigma, certify_select=100, certify_estimate=1000,
      certify_alpha=0.001, measurement_samples=measurement_samples))


def detect(*, offset: float = 0.0, scale: float = 1.0, batch_size: int = 128,
           steps: int = 2000, train_fraction: float = 0.8) -> config_dict.ConfigDict:
  """He et al.'s boundary classifier: distances normalized as (d - offset) / scale, Adam
  (lr 1e-3), `batch_size` benign + `batch_size` adversarial inputs per step; the first
  `train_fraction` of the attacked images train it, the rest test it."""
  return config_dict.ConfigDict(dict(
      offset=offset, scale=scale, batch_size=batch_size, steps=steps, learning_rate=1e-3,
      train_fraction=train_fraction, seed=0, attacks=("fgsm", "optbrittle", "optmargin"),
      train_attacks=("optbrittle", "optmargin")))


# --- Cao & Gong's region-defense study (experiments.region_defense) ---------------------------

def region_defense_models(train_cfg: config_dict.ConfigDict,
                          adversarial_cfg: config_dict.ConfigDict | None = None,
                          temperature: float = 100.0) -> config_dict.ConfigDict:
  """Cao & Gong's four trained variants, all of one architecture and training recipe: the
  standard model ("natural"), adversarial training on clean + DeepFool examples of the natural
  model ("adversarial", `augment_from`), and defensive distillation at T ("teacher" trained at T,
  "distillation" trained at T on the teacher's soft labels and deployed at T = 1)."""
  models = config_dict.ConfigDict()
  models.natural = config_dict.ConfigDict(train_cfg.to_dict())
  models.adversarial = config_dict.ConfigDict((adversarial_cfg or train_cfg).to_dict())
  models.adversarial.augment_from = "natural"
  models.teacher = config_dict.ConfigDict(train_cfg.to_dict())
  models.teacher.temperature = temperature
  models.distillation = config_dict.ConfigDict(train_cfg.to_dict())
  models.distillation.temperature = temperature
  models.distillation.distill_from = "teacher"
  return models


def region_defense_study(*, num_images: int, batch_size: int, radius_step: float,
                         radius_samples: int, region_samples: int,
                         validation_images: int | None = None, radius_tolerance: float = 0.0,
                         max_radius: float | None = None, pool: int | None = None,
                         kappas=(5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0),
                         alphas=tuple(round(0.1 * i, 2) for i in range(21)),
                         eot_epsilons=(), eot_steps: int = 100, eot_samples: int = 20,
                         histogram_samples: int = 10_000, score_draws: int = 10,
                         draw: str = "standard") -> dict[str, config_dict.ConfigDict]:
  """The sections of the region-defense study other than data / model / models.

  study.classifiers are the point classifiers of Tables 3-6 (study.point is the one region
  classification is built on); radius: Algorithm 1 (r0 = initial, step, m samples on the first
  `validation_images` validation images); region: the deployed region classifier's m samples,
  and `score_draws` independent noise draws at which its rows are scored (a deployed region
  classifier draws fresh noise at every query); evaluation: the images (`draw` "standard": among
  those the standard point classifier labels correctly, the paper's rule; "all_correct": among
  those every point classifier and the region classifier label correctly), the attacks (Cao &
  Gong's names; every targeted one runs on each evaluated image x its K - 1 other classes), the
  high-confidence CW-L2 sweep (kappa = 0 is T-CW-L2 itself),
  `overrides` of the attacks' settings by base attack; adapted: the -A attacks' alphas;
  adaptive: EOT-PGD through the region classifier's noise (beyond the paper) at L-inf budgets
  given as fractions of the data range; figures: Figure 2's samples and the grids' settings.
  """
  attacks = ("T-JSMA", "T-CW-L0", "T-FGSM", "T-IGSM", "T-CW-Linf", "T-CW-L2", "DeepFool")
  return dict(
      study=config_dict.ConfigDict(dict(
          point="natural", classifiers=("natural", "adversarial", "distillation"),
          batch_size=500)),
      radius=config_dict.ConfigDict(dict(
          initial=0.0, step=radius_step, num_samples=radius_samples, seed=0,
          tolerance=radius_tolerance,
          validation_images=config_dict.placeholder(int) if validation_images is None
          else validation_images,
          max_radius=config_dict.placeholder(float) if max_radius is None else max_radius)),
      region=config_dict.ConfigDict(dict(num_samples=region_samples, seed=1, batch_size=8192,
                                         score_draws=score_draws)),
      evaluation=config_dict.ConfigDict(dict(
          num_images=num_images, seed=0, batch_size=batch_size, draw=draw,
          pool=config_dict.placeholder(int) if pool is None else pool,
          attacks=attacks, baseline_attacks=attacks, kappas=tuple(kappas),
          kappa_classifiers=("natural", "adversarial", "distillation"),
          overrides=config_dict.ConfigDict(dict(
              jsma={}, cw_l0={}, fgsm={}, igsm={}, cw_linf={}, cw_l2={}, deepfool={})))),
      adapted=config_dict.ConfigDict(dict(
          attacks=("T-CW-L0", "T-CW-L2", "T-CW-Linf"), alphas=tuple(alphas))),
      adaptive=config_dict.ConfigDict(dict(
          epsilons=tuple(eot_epsilons), step_factor=2.5, num_steps=eot_steps,
          num_samples=eot_samples, seed=3, batch_size=batch_size)),
      figures=config_dict.ConfigDict(dict(
          histogram_samples=histogram_samples, seed=2, grid_kappa=20.0, grid_alpha=1.0)),
  )


# --- The blind-spot study (experiments.blind_spot) --------------------------------------------

def blind_spot_study(*, epsilon: float, alphas, num_images: int, attack_batch_size: int,
                     test_images: int | None = None, train_per_class: int = 4500,
                     test_per_class: int = 800, tsne_seeds: int = 5, resamples: int = 100,
                     kl_grid: int = 200, tsne_iterations: int = 1000,
                     stop_at_threshold: bool = False, histogram_pair=(0.7, 0.0),
                     cw: dict | None = None) -> dict[str, config_dict.ConfigDict]:
  """The sections of the blind-spot study other than data / model / models.

  study: the adversarially trained model that is attacked, the models whose embeddings measure
  distance (`extractors`), the L-inf budget epsilon on the data's scale, the scale factors
  (each with beta 0 and (1 - alpha) / 2 on the paper's [-0.5, 0.5] scale), and the first
  `test_images` test images used throughout (None: all; CIFAR-10 from the local files: the
  1,000 exact ones). distance: k nearest training embeddings and the bins of Figures 1-3.
  divergence: per-class t-SNE (scikit-learn; the settings the paper leaves open are ours) of
  exactly train_per_class / test_per_class embeddings per class, the same in every data set's
  config so that the KLs compare (Scott's bandwidth scales as n^(-1/6)): 4,500 / 800 by
  default, the most that every paper data set's smallest class holds (CIFAR-10's training
  classes have 4,500 after the 5,000 validation images; MNIST's test class 5 has 892); KDE KL on
  a kl_grid x kl_grid grid, its spread over `tsne_seeds` t-SNE maps and a bootstrap over
  `resamples` resamples of the points.
  attack: C&W L-inf on the first `num_images` test images from the noisy and the grey start;
  `stop_at_threshold` ends an image's search once its distortion is within alpha * epsilon (its
  success at both thresholds is then known; the distortion is no longer the smallest found).
  figures: Figure 5's (alpha, beta) (None: no Figure 5) and Figure 4's number of images.
  """
  cw_cfg = dict(max_iterations=1000, learning_rate=5e-3, initial_const=1e-5, largest_const=20.0,
                const_factor=2.0, decrease_factor=0.9)
  cw_cfg.update(cw or {})
  return dict(
      study=config_dict.ConfigDict(dict(
          attacked="adversarial", extractors=("adversarial", "natural"), epsilon=epsilon,
          alphas=tuple(alphas), batch_size=500,
          test_images=config_dict.placeholder(int) if test_images is None else test_images)),
      distance=config_dict.ConfigDict(dict(k=5, query_chunk=1000, reference_block=8192,
                                           bins=10)),
      divergence=config_dict.ConfigDict(dict(
          model="adversarial",
          train_per_class=train_per_class, test_per_class=test_per_class,
          perplexity=30.0, max_iter=tsne_iterations, init="random", grid=kl_grid, seed=0,
          seeds=tsne_seeds, resamples=resamples)),
      attack=config_dict.ConfigDict(dict(
          num_images=num_images, starts=("noise", "grey"), noise_std=0.2, seed=0,
          batch_size=attack_batch_size, stop_at_threshold=stop_at_threshold,
          cw=config_dict.ConfigDict(cw_cfg))),
      figures=config_dict.ConfigDict(dict(histogram_pair=(
          config_dict.placeholder(tuple) if histogram_pair is None else tuple(histogram_pair)),
          examples=2,
                                          histogram_bins=30)),
  )


def training_dynamics_models(*, natural: config_dict.ConfigDict, epoch_steps: int, epochs: int,
                             unit: float, **adversarial) -> config_dict.ConfigDict:
  """The training-dynamics study's two variants: `natural`, then `adversarial`: `epochs`
  epochs of `epoch_steps` steps started from it (init_from), BI with epsilon 4, step 1, 10
  iterations in paper units `unit` (1 on CIFAR-10's 0-255 scale), no random start, the model's
  predicted labels, fully adversarial batches, a snapshot per epoch. `adversarial` overrides
  its training settings (optimizer, learning rate, ...)."""
  cfg = train(num_steps=epochs * epoch_steps, snapshot_every=epoch_steps, init_from="natural",
              adversarial=True,
              attack=dict(epsilon=4.0 * unit, step_size=1.0 * unit, num_steps=10,
                          random_start=False, labels="predicted"), **adversarial)
  return config_dict.ConfigDict(dict(natural=natural, adversarial=cfg))


def training_dynamics_study(*, unit: float, test_images: int, train_images: int,
                            batch_size: int = 500, epochs=None, fixed_universal=(0, 5, 51),
                            ratio_epochs=(0, 1, 15, -1), transfer_sources=(0, 5, 15, 51, -1),
                            destruction_epochs=(0, 1, 15, 51, -1), detect_fixed=(0, 1, -1),
                            figure_epochs=(0, 1, 5, 15, 51, -1),
                            sharedness: dict | None = None, universal: dict | None = None,
                            detect: dict | None = None,
                            deepfool: dict | None = None) -> dict[str, config_dict.ConfigDict]:
  """The sections of the training-dynamics study other than data / model / models, at the
  paper's settings in paper units `unit` (the data's stand-in for 1 on the 0-255 CIFAR-10
  scale): BI epsilon 4, step 1, 10 iterations; universal perturbations epsilon 10, step 2.5,
  m 128, K 10, 200 iterations; Figure 2 on 1,000 test perturbations and 10,000 training inputs;
  Appendix C on 1,024 perturbations and 5,000 other test inputs; Metzen's detector (96, 192,
  192). Epoch tuples use -1 for the last epoch; `epochs` (None: all) are the measured ones.

  Destruction grids (the paper gives no levels): brightness +-8, 16, 32 and contrast x0.6 to
  x1.4 (Kurakin et al.'s kinds), blur sigma 0.3 to 1.5 pixels, noise sigma 1 to 15 (dense
  around the paper's 5-7, where its curves cross); brightness and noise in paper units.
  """
  s = dict(perturbations=1000, train_inputs=10000, future_epochs=config_dict.placeholder(tuple),
           ratio_epochs=tuple(ratio_epochs), ratio_inputs=1024 + 5000, ratio_perturbations=1024)
  s.update(sharedness or {})
  u = dict(epsilon=10.0 * unit, step_size=2.5 * unit, batch_size=128, batches_per_step=10,
           iterations=200, fixed_epochs=tuple(fixed_universal), sources=("train", "test"),
           seed=0)
  u.update(universal or {})
  d = dict(fixed_epochs=tuple(detect_fixed), features=(96, 192, 192), steps=5000,
           batch_size=64, learning_rate=1e-4, seed=0,
           train_images=config_dict.placeholder(int))  # None: the whole training split (paper)
  d.update(detect or {})
  df = dict(norm="l2", overshoot=0.02, max_iterations=50,
            candidates=config_dict.placeholder(int))
  df.update(deepfool or {})
  return dict(
      study=config_dict.ConfigDict(dict(
          adversarial="adversarial",
          epochs=config_dict.placeholder(tuple) if epochs is None else tuple(epochs),
          epsilon=4.0 * unit, step_size=1.0 * unit, num_steps=10, paper_unit=float(unit),
          test_images=test_images, train_images=train_images, seed=0, batch_size=batch_size,
          # None: Figures 3, 5, 6, 8 and 16 on the whole test split (the paper's)
          eval_images=config_dict.placeholder(int),
          # None: snapshots at whole epochs; an int declares a shorter "epoch" of that many steps
          partial_epoch_steps=config_dict.placeholder(int))),
      profiles=config_dict.ConfigDict(dict(transfer_sources=tuple(transfer_sources),
                                           threshold=0.5)),
      sharedness=config_dict.ConfigDict(s),
      universal=config_dict.ConfigDict(u),
      destruction=config_dict.ConfigDict(dict(
          epochs=tuple(destruction_epochs), attacks=("bi", "fgsm", "deepfool"), seed=0,
          brightness=tuple(v * unit for v in (-32, -16, -8, 8, 16, 32)),
          contrast=(0.6, 0.8, 0.9, 1.1, 1.2, 1.4),
          blur=(0.3, 0.5, 0.75, 1.0, 1.5),
          noise=tuple(v * unit for v in (1, 2, 3, 4, 5, 6, 7, 8, 10, 15)),
          deepfool=config_dict.ConfigDict(df))),
      detect=config_dict.ConfigDict(d),
      figures=config_dict.ConfigDict(dict(perturbation_epochs=tuple(figure_epochs),
                                          amplify=10.0)),
  )
