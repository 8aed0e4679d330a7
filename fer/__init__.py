"""fer: facial emotion recognition (happy, sad, surprise, neutral) from photos, with explanations.

The public API is imported lazily, so `import fer.data` (or the app's first page) does not pay for
torch until a model is needed.
"""

from importlib import import_module

_EXPORTS = {
    "CLASSES": "fer.config",
    "DataError": "fer.errors",
    "FerError": "fer.errors",
    "ImageError": "fer.errors",
    "VideoError": "fer.errors",
    "WeightsError": "fer.errors",
    "Detector": "fer.faces",
    "Classifier": "fer.predict",
    "FaceResult": "fer.predict",
    "PhotoResult": "fer.predict",
    "Predictor": "fer.predict",
    "load_classifier": "fer.predict",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fer' has no attribute {name!r}")
