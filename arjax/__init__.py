"""arjax: autoregressive generative models in JAX/Flax NNX.

    import arjax
    model = arjax.models.NADE((784,), num_hidden=500, rngs=flax.nnx.Rngs(0))
    arjax.log_prob(model, x)              # [B] nats
    arjax.sample(model, key, 64)          # [64, 784], one jitted lax.scan
    arjax.features(model, x)              # [B, F]
"""

from arjax import heads, models, orderings
from arjax.likelihood import (bits_per_dim, check_input, ensemble_log_prob, log_prob, log_prob_per_dim,
                              mask_log_probs)
from arjax.marginals import conditional_log_prob, marginal_log_prob, sample_given
from arjax.sampling import sample


def features(model, x, *, context=None):
  """The model's representation of `x [B, *event_shape]`: `[B, F]` (see each family's docstring)."""
  check_input(model, x)
  return model.features(x, context=context)


__all__ = [
    "bits_per_dim", "check_input", "conditional_log_prob", "ensemble_log_prob", "features", "heads",
    "log_prob", "log_prob_per_dim", "marginal_log_prob", "mask_log_probs", "models", "orderings",
    "sample", "sample_given",
]
__version__ = "0.1.0"
