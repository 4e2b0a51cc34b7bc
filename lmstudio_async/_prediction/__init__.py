"""The prediction handle and the pure accumulator behind it (events in, result out)."""

from ._accumulator import PredictionAccumulator
from ._callbacks import PredictionCallbacks
from ._stream import PredictionStream

__all__ = ["PredictionAccumulator", "PredictionCallbacks", "PredictionStream"]
