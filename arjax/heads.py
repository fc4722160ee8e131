"""Output distributions ("heads") of one dimension given its parameters.

A model produces, for every dimension d, a parameter vector `params[..., d, :]`
of length `head.num_params`; the head turns it into a distribution. Heads are
frozen dataclasses: they are configuration (they go into experiment configs)
and pure functions at once. Every method works elementwise over any leading
shape `[...]`:

  log_prob(params [..., P], x [...]) -> [...]   log p(x | params), in nats
  sample(key, params [..., P], temperature) -> [...]
  as_input(x [...]) -> float [...]              how a value is fed back to the network
  validate(x)                                   host-side support check, clear error

Temperature: logits are divided by it and continuous scales multiplied by it,
so `temperature -> 0` approaches the mode of each conditional and 1 is the model.
"""

from __future__ import annotations

import abc
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from arjax import validation

__all__ = [
    "Head",
    "Bernoulli",
    "Categorical",
    "MixtureOfGaussians",
    "MixtureOfLogistics",
    "DiscretizedLogisticMixture",
    "HEADS",
    "get_head",
]


def is_concrete(x) -> bool:
  """False for tracers (inside jit/vmap/grad), where values cannot be checked."""
  return not isinstance(x, jax.core.Tracer)


def _within_support(log_p: jax.Array, x: jax.Array, in_support: jax.Array) -> jax.Array:
  """`log_p` where `x` lies in the support, −inf (probability zero) where it does not, NaN
  where `x` is NaN. Under `jit` the host-side `validate` cannot run; this keeps a value
  outside the support from giving a finite, wrong log-probability there."""
  outside = jnp.where(jnp.isnan(x), jnp.nan, -jnp.inf) if jnp.issubdtype(x.dtype, jnp.floating) else -jnp.inf
  return jnp.where(in_support, log_p, outside)


def _is_integer_in(x: jax.Array, num_values: int) -> jax.Array:
  """Elementwise: x is one of 0, 1, …, num_values − 1 (floats must be whole numbers)."""
  if jnp.issubdtype(x.dtype, jnp.floating):
    return (x == jnp.round(x)) & (x >= 0) & (x < num_values)
  # In x's own dtype the bound can wrap: for uint8 pixels, 256 becomes 0 and every value
  # would fall outside the support (log p = −inf), so compare in int32.
  x = x.astype(jnp.int32)
  return (x >= 0) & (x < num_values)


def _require_finite(name: str, x: np.ndarray) -> None:
  if not np.all(np.isfinite(x)):
    bad = np.argwhere(~np.isfinite(x))[0].tolist()
    raise ValueError(
        f"{name}: the data contains NaN or infinite values (first at index {bad}). "
        "Clean or impute the data before computing likelihoods.")


class Head(abc.ABC):
  """The distribution of one dimension given `num_params` unconstrained reals."""

  #: dtype of the values this head models (what `sample` returns).
  value_dtype = jnp.float32

  @property
  @abc.abstractmethod
  def num_params(self) -> int:
    """P, the length of the parameter vector of one dimension."""

  @abc.abstractmethod
  def log_prob(self, params: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x | params) for `params [..., P]`, `x [...]`; returns `[...]` nats."""

  @abc.abstractmethod
  def sample(self, key: jax.Array, params: jax.Array,
             temperature: float | jax.Array = 1.0) -> jax.Array:
    """Draws `x [...]` from `params [..., P]`."""

  @abc.abstractmethod
  def validate(self, x) -> None:
    """Raises ValueError, saying what is wrong, if `x` lies outside the support.

    Called by the public entry points on concrete (non-traced) inputs only.
    """

  def as_input(self, x: jax.Array) -> jax.Array:
    """The float a network sees for value `x` (identity for real values)."""
    return x.astype(jnp.float32)

  def init_bias(self) -> jax.Array:
    """Output-layer bias `[P]` that every dimension starts from."""
    return jnp.zeros((self.num_params,), jnp.float32)

  def moments(self, params: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Analytic mean and variance `[...]` of the value (used by tests and features)."""
    raise NotImplementedError(f"{type(self).__name__} has no analytic moments")


# ---------------------------------------------------------------- discrete --


@dataclasses.dataclass(frozen=True, kw_only=True)
class Bernoulli(Head):
  """x in {0, 1}; one logit. log p(x) = x·l − softplus(l) (−inf for any other x)."""

  @property
  def num_params(self) -> int:
    return 1

  def log_prob(self, params, x):
    logits = params[..., 0]
    x = jnp.asarray(x)
    return _within_support(x * logits - jax.nn.softplus(logits), x, (x == 0) | (x == 1))

  def sample(self, key, params, temperature=1.0):
    probs = jax.nn.sigmoid(params[..., 0] / temperature)
    return jax.random.bernoulli(key, probs).astype(self.value_dtype)

  def validate(self, x):
    x = np.asarray(x)
    _require_finite("Bernoulli head", x)
    bad = (x != 0) & (x != 1)
    if bad.any():
      raise ValueError(
          f"Bernoulli head: values must be 0 or 1, found {x[bad][:5].tolist()}. "
          "Binarize the data (DataConfig.binarize='static' or 'dynamic') or use "
          "a Categorical head for multi-level data.")

  def moments(self, params):
    p = jax.nn.sigmoid(params[..., 0])
    return p, p * (1 - p)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Categorical(Head):
  """x an integer in [0, num_classes); softmax over `num_classes` logits.

  The network sees x rescaled to [0, 1] (x / (K − 1)): ordinal inputs keep the
  input layer at one weight per dimension, as in the NADE papers.
  """

  num_classes: int  # K, the number of values a dimension takes
  value_dtype = jnp.int32

  def __post_init__(self):
    validation.check_fields(self, {"num_classes": validation.integer(minimum=2)})

  @property
  def num_params(self) -> int:
    return self.num_classes

  def log_prob(self, params, x):
    x = jnp.asarray(x)
    in_support = _is_integer_in(x, self.num_classes)
    index = jnp.where(in_support, x, 0).astype(jnp.int32)  # a valid index everywhere; masked below
    log_probs = jax.nn.log_softmax(params, axis=-1)
    return _within_support(jnp.take_along_axis(log_probs, index[..., None], axis=-1)[..., 0], x, in_support)

  def sample(self, key, params, temperature=1.0):
    return jax.random.categorical(key, params / temperature, axis=-1).astype(self.value_dtype)

  def validate(self, x):
    x = np.asarray(x)
    _require_finite("Categorical head", x)
    if np.issubdtype(x.dtype, np.floating) and not np.all(x == np.round(x)):
      raise ValueError(
          "Categorical head: values must be integers, found non-integer floats "
          f"such as {x[x != np.round(x)][:3].tolist()}. Quantize the data first.")
    if x.size and (x.min() < 0 or x.max() >= self.num_classes):
      raise ValueError(
          f"Categorical head: values must lie in [0, {self.num_classes}), found range "
          f"[{x.min()}, {x.max()}]. Set num_classes to the number of levels of the data.")

  def as_input(self, x):
    return x.astype(jnp.float32) / (self.num_classes - 1)

  def moments(self, params):
    probs = jax.nn.softmax(params, axis=-1)
    values = jnp.arange(self.num_classes, dtype=jnp.float32)
    mean = probs @ values
    return mean, probs @ values**2 - mean**2


# -------------------------------------------------------------- continuous --


def _logistic_noise(key, shape):
  u = jax.random.uniform(key, shape, minval=1e-6, maxval=1 - 1e-6)
  return jnp.log(u) - jnp.log1p(-u)


def _softplus_inverse(y: float) -> float:
  return y + math.log(-math.expm1(-y))


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Mixture(Head):
  """Shared layout of the location-scale mixtures: params = [logits, locs, raw_scales].

  scale = min_scale + softplus(raw_scale): smooth, positive, and floored so a
  component cannot collapse onto one training point (infinite density).
  """

  num_components: int = 5  # K
  min_scale: float = 1e-3  # floor on every component's scale
  init_spread: float = 2.0  # initial locations spread evenly over [-init_spread, init_spread]
  init_scale: float = 1.0  # initial scale of every component

  def __post_init__(self):
    validation.check_fields(self, self._rules())

  def _rules(self) -> dict[str, validation.Rule]:
    return {"num_components": validation.integer(minimum=1),
            "min_scale": validation.real(minimum=0, above=True),
            "init_spread": validation.real(minimum=0),
            "init_scale": validation.real(minimum=0, above=True)}

  @property
  def num_params(self) -> int:
    return 3 * self.num_components

  def _unpack(self, params):
    logits, locs, raw_scales = jnp.split(params, 3, axis=-1)  # 3 x [..., K]
    return logits, locs, self.min_scale + jax.nn.softplus(raw_scales)

  def init_bias(self):
    """A broad mixture: equal weights, locations spread out, unit-order scales."""
    k = self.num_components
    locs = jnp.linspace(-self.init_spread, self.init_spread, k) if k > 1 else jnp.zeros(1)
    raw = _softplus_inverse(max(self.init_scale - self.min_scale, 1e-6))
    return jnp.concatenate([jnp.zeros(k), locs, jnp.full(k, raw)]).astype(jnp.float32)

  def validate(self, x):
    _require_finite(f"{type(self).__name__} head", np.asarray(x))

  @abc.abstractmethod
  def _component_log_prob(self, x, locs, scales): ...

  @abc.abstractmethod
  def _standard_noise(self, key, shape): ...

  @abc.abstractmethod
  def _component_variance(self, scales): ...

  def log_prob(self, params, x):
    logits, locs, scales = self._unpack(params)
    log_weights = jax.nn.log_softmax(logits, axis=-1)
    return jax.nn.logsumexp(
        log_weights + self._component_log_prob(x[..., None], locs, scales), axis=-1)

  def sample(self, key, params, temperature=1.0):
    logits, locs, scales = self._unpack(params)
    component_key, noise_key = jax.random.split(key)
    component = jax.random.categorical(component_key, logits / temperature, axis=-1)
    loc = jnp.take_along_axis(locs, component[..., None], axis=-1)[..., 0]
    scale = jnp.take_along_axis(scales, component[..., None], axis=-1)[..., 0]
    return loc + temperature * scale * self._standard_noise(noise_key, loc.shape)

  def moments(self, params):
    logits, locs, scales = self._unpack(params)
    weights = jax.nn.softmax(logits, axis=-1)
    mean = jnp.sum(weights * locs, axis=-1)
    second = jnp.sum(weights * (self._component_variance(scales) + locs**2), axis=-1)
    return mean, second - mean**2


@dataclasses.dataclass(frozen=True, kw_only=True)
class MixtureOfGaussians(_Mixture):
  """Mixture of K Gaussians for real x (RNADE; Uria, Murray & Larochelle 2013)."""

  def _component_log_prob(self, x, locs, scales):
    z = (x - locs) / scales
    return -0.5 * z**2 - jnp.log(scales) - 0.5 * math.log(2 * math.pi)

  def _standard_noise(self, key, shape):
    return jax.random.normal(key, shape)

  def _component_variance(self, scales):
    return scales**2


@dataclasses.dataclass(frozen=True, kw_only=True)
class MixtureOfLogistics(_Mixture):
  """Mixture of K logistic densities for real x.

  log f(x) = −z − log s − 2·softplus(−z), z = (x − μ)/s; variance s²π²/3.
  """

  def _component_log_prob(self, x, locs, scales):
    z = (x - locs) / scales
    return -z - jnp.log(scales) - 2 * jax.nn.softplus(-z)

  def _standard_noise(self, key, shape):
    return _logistic_noise(key, shape)

  def _component_variance(self, scales):
    return scales**2 * math.pi**2 / 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiscretizedLogisticMixture(_Mixture):
  """PixelCNN++'s discretized mixture of logistics for integers in [0, num_bins).

  Value k maps to y = 2k/(num_bins − 1) − 1 in [−1, 1]; each bin has half-width
  1/(num_bins − 1). P(k) is the mixture's logistic mass on the bin, with the
  edge bins taking all mass below −1 (k = 0) and above +1 (k = num_bins − 1),
  so the probabilities of all bins sum to exactly 1 (Salimans et al. 2017).
  """

  num_bins: int = 256
  init_spread: float = 0.8
  init_scale: float = 0.3
  value_dtype = jnp.int32

  def _rules(self):
    return {**super()._rules(), "num_bins": validation.integer(minimum=2)}

  def _to_unit(self, x):
    return 2.0 * x.astype(jnp.float32) / (self.num_bins - 1) - 1.0

  def as_input(self, x):
    return self._to_unit(x)

  def _component_log_prob(self, x, locs, scales):
    y = self._to_unit(x)
    half_width = 1.0 / (self.num_bins - 1)
    inv_scale = 1.0 / scales
    plus_in = inv_scale * (y - locs + half_width)
    min_in = inv_scale * (y - locs - half_width)
    log_cdf_plus = plus_in - jax.nn.softplus(plus_in)  # log σ(plus_in), for k = 0
    log_one_minus_cdf_min = -jax.nn.softplus(min_in)  # log(1 − σ(min_in)), for k = K−1
    cdf_delta = jax.nn.sigmoid(plus_in) - jax.nn.sigmoid(min_in)
    # When the bin mass underflows in float32 (a far-away component), fall back to
    # density × bin width at the bin centre, as PixelCNN++ does.
    mid_in = inv_scale * (y - locs)
    log_pdf_mid = mid_in - jnp.log(scales) - 2 * jax.nn.softplus(mid_in)
    log_mass_mid = jnp.where(
        cdf_delta > 1e-5,
        jnp.log(jnp.maximum(cdf_delta, 1e-12)),
        log_pdf_mid + math.log(2 * half_width))
    return jnp.where(
        x <= 0, log_cdf_plus,
        jnp.where(x >= self.num_bins - 1, log_one_minus_cdf_min, log_mass_mid))

  def _standard_noise(self, key, shape):
    return _logistic_noise(key, shape)

  def _component_variance(self, scales):
    return scales**2 * math.pi**2 / 3

  def log_prob(self, params, x):
    x = jnp.asarray(x)
    return _within_support(super().log_prob(params, x), x, _is_integer_in(x, self.num_bins))

  def sample(self, key, params, temperature=1.0):
    y = super().sample(key, params, temperature)
    k = jnp.round((y + 1.0) * (self.num_bins - 1) / 2.0)
    return jnp.clip(k, 0, self.num_bins - 1).astype(self.value_dtype)

  def moments(self, params):
    raise NotImplementedError(
        "DiscretizedLogisticMixture: moments of the binned values have no closed form")

  def validate(self, x):
    Categorical(num_classes=self.num_bins).validate(x)


#: Heads by the name used in configs and on the command line.
HEADS: dict[str, type[Head]] = {
    "bernoulli": Bernoulli,
    "categorical": Categorical,
    "mixture_of_gaussians": MixtureOfGaussians,
    "mixture_of_logistics": MixtureOfLogistics,
    "discretized_logistic_mixture": DiscretizedLogisticMixture,
}


def get_head(name: str, **kwargs) -> Head:
  """Builds a head by name, e.g. `get_head("categorical", num_classes=256)`."""
  if name not in HEADS:
    raise ValueError(f"Unknown head {name!r}; choose one of {sorted(HEADS)}")
  return HEADS[name](**kwargs)
