"""The three uses of a trained density model: anomaly scores, representations, conditional samples.

  score     per-example and per-dimension NLL of any data, and PNG heat maps of where
            an image is surprising (`nll_scores`, `heatmap_picture`).
  ood       out-of-distribution detection with NLL as the anomaly score, optionally
            as a likelihood ratio against a background model (`ood_metrics`,
            `ood_inputs`, `histogram_picture`).
  probe     a linear probe (multinomial logistic regression) on `arjax.features`
            against the same probe on raw pixels (`linear_probe`).
  inpaint   completions of partly observed images by clamping the observed pixels
            in the sampler (`observed_mask`, `inpaint`, `inpainting_picture`).
  classify  a class-conditional model p(x | y) as a generative classifier by Bayes'
            rule (`class_log_likelihoods`, `generative_classifier`).

Shapes: data are flat `[N, D]` as `arjax.data` gives them; `image_shape` is
`[H, W, C]`. Everything here is a function of arrays (and a model); the command
line (`python -m arjax score|ood|probe|inpaint`) loads checkpoints and writes files.
"""

from arjax.uses.scoring import (
    load_data_like, load_trained, nll_scores, summarize, heatmap_picture)
from arjax.uses.ood import (
    ood_metrics, OOD_TRANSFORMS, uniform_noise, flip_vertical, rotate90, ood_inputs, ood_scores,
    ood_set_summary, ood_note, histogram_picture)
from arjax.uses.probe import (
    extract_features, fit_linear_probe, require_labels, linear_probe)
from arjax.uses.inpainting import (
    MASKS, observed_mask, is_prefix, exact_draw, inpaint, spread_indices, inpainting_picture)
from arjax.uses.classify import (
    class_log_likelihoods, generative_classifier)

__all__ = [
    "load_data_like",
    "load_trained",
    "nll_scores",
    "summarize",
    "heatmap_picture",
    "ood_metrics",
    "OOD_TRANSFORMS",
    "uniform_noise",
    "flip_vertical",
    "rotate90",
    "ood_inputs",
    "ood_scores",
    "ood_set_summary",
    "ood_note",
    "histogram_picture",
    "extract_features",
    "fit_linear_probe",
    "require_labels",
    "linear_probe",
    "MASKS",
    "observed_mask",
    "is_prefix",
    "inpaint",
    "exact_draw",
    "spread_indices",
    "inpainting_picture",
    "class_log_likelihoods",
    "generative_classifier",
]
