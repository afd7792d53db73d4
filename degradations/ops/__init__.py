"""The degradation ops, registered by name in `OPS` when this package is imported."""

from degradations.ops import blur, color, jpeg, noise, resize  # noqa: F401  (importing registers the ops)
from degradations.ops.base import OPS, Op

__all__ = ["OPS", "Op"]
