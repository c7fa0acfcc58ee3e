"""Control over what is generated, from CelebA's 40 attribute labels.

- ``labels``: ``list_attr_celeba.txt``, attribute names and requests (``[Male, ~Eyeglasses]``).
- ``classifier``: the attribute classifier (torchvision ResNet-18, randomly initialised), its
  ``classifier.pt`` format and safe loading (which refuses another resolution in one line).
- ``training``: the classifier's training loop and held-out report (accuracy, majority-class
  baseline, balanced accuracy).
- ``separability``: the paper's linear separability (§4.2): SVMs on Z and W, ``exp(sum H(Y|X))``.
- ``directions``: InterFaceGAN's attribute directions in W, conditional (orthogonalised)
  editing, and their place in ``generator.pt``.
- ``conditional``: faces with requested attributes (direction shifts plus rejection).

``attributes.py`` trains and measures; ``sample.py figure=edit`` and ``figure=faces
attributes=[...]`` use the directions.
"""

from stylegan.attributes.classifier import (
    AttributeClassifier,
    classifier_export,
    load_classifier,
    predict_probs,
)
from stylegan.attributes.conditional import ConditionalResult, conditional_faces, shift_towards
from stylegan.attributes.directions import (
    DIRECTIONS_KEY,
    Directions,
    edit_direction,
    edit_images,
    edited_ws,
    fit_directions,
    load_directions,
    orthogonalize,
    shift_ws,
    store_directions,
)
from stylegan.attributes.labels import (
    check_attribute,
    labels_for,
    parse_request,
    read_attribute_table,
    request_label,
)
from stylegan.attributes.separability import (
    attribute_entropies,
    conditional_entropy,
    entropy,
    fit_hyperplane,
    format_separability,
    linear_separability,
    most_confident,
    sample_attributes,
    separability_score,
)
from stylegan.attributes.training import (
    TrainOptions,
    classify_uint8,
    format_report,
    holdout_report,
    train_classifier,
)

__all__ = [
    "DIRECTIONS_KEY",
    "AttributeClassifier",
    "ConditionalResult",
    "Directions",
    "TrainOptions",
    "attribute_entropies",
    "check_attribute",
    "classifier_export",
    "classify_uint8",
    "conditional_entropy",
    "conditional_faces",
    "edit_direction",
    "edit_images",
    "edited_ws",
    "entropy",
    "fit_directions",
    "fit_hyperplane",
    "format_report",
    "format_separability",
    "holdout_report",
    "labels_for",
    "linear_separability",
    "load_classifier",
    "load_directions",
    "most_confident",
    "orthogonalize",
    "parse_request",
    "predict_probs",
    "read_attribute_table",
    "request_label",
    "sample_attributes",
    "separability_score",
    "shift_towards",
    "shift_ws",
    "store_directions",
    "train_classifier",
]
