"""The measure families of the fit-once protocol (`reprsim.engine.scheduler.PairFamily`), one module each.

- `LinearFamily` (`reprsim.engine.linear_family`): every linear measure (CKA, the CCA family, linreg,
  maxsim, Procrustes). A tile's fit is one streaming pass over the rows forming the tile's cross-product
  blocks (and the covariance of each representation seen for the first time, kept as a `LinearFit` for
  every later tile); a pair is scored from the two fits and its cross block.
- `SampleFamily` (`reprsim.engine.sample_family`): one n x n measure (RBF CKA, RSA, mutual k-NN) on a shared
  row subsample.
- `AttentionFamily` (`reprsim.engine.attention_family`): one attention measure on a shared sentence
  subsample.
- `MomentsFamily` (`reprsim.engine.linear_family`): the linear family over moments accumulated (or merged)
  by hand, for `pair_results`.
"""

from .attention_family import AttentionFamily
from .linear_family import LinearFamily, MomentsFamily, warn_about_fits
from .sample_family import SampleFamily

__all__ = ["AttentionFamily", "LinearFamily", "MomentsFamily", "SampleFamily", "warn_about_fits"]
