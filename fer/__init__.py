"""fer: facial emotion recognition (happy, sad, surprise, neutral) from photos, with explanations."""

from fer.data import CLASSES
from fer.errors import DataError, FerError, ImageError, WeightsError
from fer.predict import Classifier, FaceResult, PhotoResult, Predictor, load_classifier

__all__ = [
    "CLASSES",
    "Classifier",
    "DataError",
    "FaceResult",
    "FerError",
    "ImageError",
    "PhotoResult",
    "Predictor",
    "WeightsError",
    "load_classifier",
]
