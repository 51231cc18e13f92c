"""The model room: an ONNX backbone turns frames into Features; methods turn Features into maps.

`Backbone` (onnxruntime session, layers) with its `Preprocessor` (frames to input tensors),
`Features`, `heatmap` (cam, eigen, mean, max, norm, channel:K), `TemporalSmoother` (maps on
video) and the bundled models. Inside: `graph` (ONNX questions), `head` (the classifier CAM
needs), `layers` (which maps there are), `layout` (channels first or last), `onnxfile`.
"""

from liveheat.model.backbone import Backbone, layers_table
from liveheat.model.bundled import BUNDLED, models_dir, resolve_model
from liveheat.model.features import Features, LayerInfo
from liveheat.model.heatmaps import METHODS, heatmap, target_index
from liveheat.model.preprocess import Preprocessor
from liveheat.model.smoothing import TemporalSmoother

__all__ = [
    "BUNDLED",
    "METHODS",
    "Backbone",
    "Features",
    "LayerInfo",
    "Preprocessor",
    "TemporalSmoother",
    "heatmap",
    "layers_table",
    "models_dir",
    "resolve_model",
    "target_index",
]
