"""The dataset API layer: datasets, tensors, rows and samples."""

from lakefs.dataset.dataset import Dataset
from lakefs.dataset.samples import EncodedFile, read
from lakefs.dataset.tensor import Sample, Tensor
from lakefs.dataset.views import Group, Row

__all__ = ["Dataset", "EncodedFile", "Group", "Row", "Sample", "Tensor", "read"]
