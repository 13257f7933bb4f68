"""lakefs: a chunked dataset store for deep learning, mountable as a filesystem.

    ds = lakefs.dataset("./cats")
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.images.append(lakefs.read("cat.jpg"))   # stored byte-for-byte
    ds.flush()
"""

from lakefs.api import dataset, empty, exists, load
from lakefs.dataset import Dataset, EncodedFile, Group, Row, Sample, Tensor, read
from lakefs.errors import LakeFSError

__version__ = "0.1.0"

__all__ = [
    "Dataset", "EncodedFile", "Group", "LakeFSError", "Row", "Sample", "Tensor",
    "dataset", "empty", "exists", "load", "read",
]
