"""The face engine: detection, 5-point landmarks, dlib chip alignment and the
128-d ResNet encoder. Importing this package does not import TensorFlow; the
model is built explicitly (see ``facegate.engine.build``)."""

from facegate.engine.types import (
    Box,
    ChipEmbedder,
    Chips,
    Encodings,
    Face,
    FaceDetector,
    FaceEncoder,
    Image,
    LandmarkPredictor,
)

__all__ = [
    "Box",
    "ChipEmbedder",
    "Chips",
    "Encodings",
    "Face",
    "FaceDetector",
    "FaceEncoder",
    "Image",
    "LandmarkPredictor",
]
