"""arjax: autoregressive generative models in JAX/Flax NNX.

    import arjax
    model = arjax.models.NADE((784,), num_hidden=500, rngs=flax.nnx.Rngs(0))
    arjax.log_prob(model, x)              # [B] nats
    arjax.sample(model, key, 64)          # [64, 784], one jitted lax.scan
    arjax.features(model, x)              # [B, F]
"""

import jax
import jax.numpy as jnp
import numpy as np

from arjax import heads, models, orderings
from arjax.likelihood import (bits_per_dim, check_empty_context, check_input, ensemble_log_prob, log_prob,
                              log_prob_per_dim, mask_log_probs)
from arjax.marginals import conditional_log_prob, marginal_log_prob, sample_given
from arjax.sampling import sample


def features(model, x, *, context=None):
  """The model's representation of `x [B, *event_shape]`: `[B, F]` (see each family's docstring)."""
  check_input(model, x)
  if np.shape(x)[0] == 0:  # F from the shape of one example's features, without computing them
    check_empty_context(model, context)
    one = jax.ShapeDtypeStruct((1, *np.shape(x)[1:]), np.asarray(x).dtype)
    one_context = None if context is None else jax.ShapeDtypeStruct((1, *np.shape(context)[1:]), jnp.float32)
    shape = jax.eval_shape(lambda x1, c1: model.features(x1, context=c1), one, one_context)
    return jnp.zeros((0, *shape.shape[1:]), shape.dtype)
  return model.features(x, context=context)


__all__ = [
    "bits_per_dim", "check_input", "conditional_log_prob", "ensemble_log_prob", "features", "heads",
    "log_prob", "log_prob_per_dim", "marginal_log_prob", "mask_log_probs", "models", "orderings",
    "sample", "sample_given",
]
__version__ = "0.1.0"
