"""Released depth weights in and out: importers of the field's layouts and a code-free Lightning reader."""

from robustdepth.weights.importers import LAYOUTS, ImportedWeights, Layout, import_weights, read_layout
from robustdepth.weights.safe_pickle import UnsafeCheckpointError, load_lightning_checkpoint

__all__ = [
    "LAYOUTS",
    "ImportedWeights",
    "Layout",
    "UnsafeCheckpointError",
    "import_weights",
    "load_lightning_checkpoint",
    "read_layout",
]
