"""Deep order-agnostic NADE and its ensemble EoNADE on statically binarized MNIST (Uria,
Murray & Larochelle 2014).

    ARJAX_DATA_DIR=../shared/data python -m arjax train eonade_binarized_mnist --workdir runs/eonade

Two hidden layers of 500 ReLU units over [x ⊙ m, m]; trained on the
order-agnostic objective (a random ordering and split point per example,
rescaled by D/(D−d); arjax/models/deep_nade.py). Early stopping watches that
objective on the validation set (fixed keys, one per batch), an upper bound on the NLL;
exact likelihoods cost D = 784 passes per ordering and are computed at the
end: the test NLL is the ensemble over 16 random orderings, log-mean-exp of
the 16 exact likelihoods (published EoNADE 2 hidden layers: 85.10 nats), and
`test_nll_single_mask_nats` gives one ordering alone. The exact test
evaluation (16 × 784 positions of 10,000 digits) takes ~9 min on the 2-core CPU
(18 digits/s, experiments/results/speed/benchmark_eonade_eval_cpu.jsonl).
Measured in nine stages, each starting from the best parameters of the one before:
1. H200, `train eonade_binarized_mnist --workdir runs/eonade`: 59 epochs, 6.4 min,
   93.67 (experiments/results/sweeps/eonade_binarized_mnist/eonade_binarized_mnist__gpu_stage1.json);
2. H200, `... --workdir runs/eonade_warm train.init_from=runs/eonade` (a fresh Adam):
   525 more epochs in 10.3 min over three invocations, 87.94 (one ordering 91.51;
   experiments/results/sweeps/eonade_binarized_mnist/eonade_binarized_mnist__gpu_stage2.json);
3. the 2-core CPU, `... train.init_from=<stage 2> optim.learning_rate=1e-4`: 261 epochs
   in 57.6 min of wall time (~12 of them paused), early-stopped (best 211): 87.60, one
   ordering 91.07 (experiments/results/sweeps/eonade_binarized_mnist/eonade_binarized_mnist__cpu_stage3.json);
4. the CPU, from stage 3 with `optim.l2=1e-4` at Adam 1e-4 (stage 3 overfit): 372 epochs
   in 27 min, 87.22, one ordering 90.48
   (experiments/results/sweeps/eonade_binarized_mnist/eonade_binarized_mnist__cpu_stage4.json);
5. the CPU, from stage 4 with `optim.l2=3e-4` at Adam 1e-4: 612 epochs in 45 min,
   86.74 nats for the 16-ordering ensemble, 89.79 for one ordering, 85.92 for 128
   (experiments/results/sweeps/eonade_binarized_mnist/eonade_binarized_mnist__cpu_stage5*.json); valid 90.97
   against stage 4's 91.76 under the same per-batch keys;
6. the CPU, stage 5's recipe again from stage 5 (`train.init_from=<stage 5>
   optim.learning_rate=1e-4 optim.l2=3e-4 model.num_masks=1`): 566 epochs in 40 min,
   early-stopped (best 516), valid 90.39; one ordering 89.25, 86.31 nats with 16 orderings
   and 85.52 with 128 (experiments/results/sweeps/eonade_binarized_mnist/eonade_binarized_mnist__cpu_stage6*.json);
7. the CPU, the same recipe from stage 6 with `train.patience=150` (a fresh Adam first
   raises the validation estimate for ~50 epochs): 571 epochs in 45 min (time budget,
   best 544), valid 89.98; one ordering 88.86, 85.98 nats with 16 orderings and 85.22 with
   128 (experiments/results/sweeps/eonade_binarized_mnist/eonade_binarized_mnist__cpu_stage7*.json);
8. H200 (three runs side by side, scripts/parallel_gpu_runs.sh), the same recipe from stage 7 beside two
   variants (Adam 2e-4; decay x0.998), chosen on validation: 358 epochs in 4.4 min, valid
   89.89; one ordering 88.75, 16 orderings 85.86, 128 orderings 85.09
   (experiments/results/sweeps/eonade_binarized_mnist/eonade_binarized_mnist__gpu_stage8*.json);
9. H200, the same recipe from stage 8 (`train.init_from=<stage 8> model.num_masks=1
   optim.l2=3e-4 train.patience=150 optim.learning_rate=1e-4 train.max_train_minutes=4.2`):
   350 epochs in 4.3 min (time budget, best 348), valid 89.74; one ordering 88.60
   (experiments/results/eonade_binarized_mnist.json), **85.72 nats with 16 orderings and
   84.95 with 128** (experiments/results/eonade_binarized_mnist.ensemble_size_test.json;
   28 s on the H200).
The ensemble's size is not fixed by training: `python -m arjax eval DIR --num-masks N`
evaluates N orderings, and scripts/ensemble_size.py gives the NLL for N = 1, 2, 4, ...,
128 (80–95 min on the CPU for the full test set, under 30 s on an H200).
Variants: "smoke" (tiny, seconds on CPU).
"""

import dataclasses

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import DeepNADEConfig


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="binarized_mnist"),
      model=DeepNADEConfig(hidden_sizes=(500, 500), num_masks=16),
      optim=OptimConfig(learning_rate=1e-3, schedule="exponential", decay_rate=0.995),
      train=TrainConfig(batch_size=100, num_epochs=2000, patience=50, eval_batch_size=500),
  )
  if variant == "":
    return config
  if variant == "smoke":
    return smoke(config, model=dataclasses.replace(config.model, hidden_sizes=(16, 16), num_masks=2))
  raise unknown_variant(variant, ("", "smoke"))
