"""The vision package's exceptions.

VisionError
├── ImageError        an image cannot be read or used (names the file)
├── ModelError        a model cannot be loaded or run
│   └── CardMismatch  the model card does not match the graph (says what differs)
├── DatasetError      a training or evaluation folder cannot be used (names the files)
└── ExtraMissing      an optional extra (the pretrained backbone, torch) or its weights are absent
"""


class VisionError(Exception):
    """A vision problem the operator or integrator can act on."""


class ImageError(VisionError):
    """An image could not be read or used"""


class ModelError(VisionError):
    """A model could not be loaded or run"""


class CardMismatch(ModelError):
    """The model card does not match the model's graph"""


class DatasetError(VisionError):
    """A dataset folder could not be used"""


class ExtraMissing(VisionError):
    """An optional extra or the weights it carries is not installed"""
