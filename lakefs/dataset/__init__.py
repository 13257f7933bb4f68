"""The dataset API layer: datasets, tensors, rows and samples."""

from lakefs.dataset.dataset import Dataset, Group, Row
from lakefs.dataset.samples import EncodedFile, read
from lakefs.dataset.tensor import Sample, Tensor

__all__ = ["Dataset", "EncodedFile", "Group", "Row", "Sample", "Tensor", "read"]
