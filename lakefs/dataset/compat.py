"""What a script ported from Deep Lake v3 reaches for that lakefs does not have, and what
to use instead: one table per place it shows (``create_tensor``'s arguments, the
dataset's attributes), so a ported script gets an error that names the lakefs way
instead of a setting kept as inert ``info`` or a misleading "no such tensor"."""

from __future__ import annotations

#: ``create_tensor`` arguments that are no lakefs setting and no misspelling of one close
#: enough to be named by "did you mean" (``compression`` is not close to either).
TENSOR_ARGUMENT_HINTS: dict[str, str] = {
    "compression": ("lakefs has sample_compression= (each sample stored as a compressed file: jpeg, png, "
                    "wav...) or chunk_compression= (lz4 over whole chunks)"),
    "is_sequence": ("lakefs has no sequence tensors: store each item as a row, or a sequence as one array "
                    "(a generic tensor) or one video"),
    "is_link": "lakefs has no link tensors: store the file itself (lakefs.read(path))",
}

_VERSIONS = ("lakefs has no version control (branches, a history to go back to): ds.commit() is flush(), "
             "which makes the writes so far durable and keeps no message; copy the dataset's folder to keep a state")
_LOADERS = ("lakefs has no framework loaders: iterate the dataset (for row in ds: row.images.numpy()) in your own "
            "torch or tf Dataset, or mount it (`lakefs mount`) and read its files (e.g. torchvision's ImageFolder)")
_QUERIES = ("lakefs has no queries or saved views: pick rows in Python, ds[[3, 7, ...]] or ds[boolean_mask] "
            "gives those rows")
_LENGTHS = ("every tensor shares the dataset's rows: len(ds) counts them, and len(ds.<tensor>) runs to that "
            "tensor's last filled row")

#: Deep Lake ``Dataset`` attributes lakefs lacks: ``ds.<name>`` of one of them, when no
#: tensor or group has that name, is an AttributeError with this hint.
DATASET_ATTRIBUTE_HINTS: dict[str, str] = {
    **dict.fromkeys(("checkout", "log", "diff", "merge", "reset", "branch", "branches", "commit_id",
                     "pending_commit_id", "delete_branch"), _VERSIONS),
    **dict.fromkeys(("pytorch", "tensorflow", "dataloader"), _LOADERS),
    **dict.fromkeys(("query", "filter", "sample_by", "save_view", "load_view"), _QUERIES),
    **dict.fromkeys(("max_len", "min_len", "num_samples"), _LENGTHS),
    "pop": "lakefs removes no rows: ds.<tensor>.pop(i) empties one tensor's cell (the row and its other cells stay)",
    "info": ("lakefs keeps no dataset-level info: keep it as a plain file (ds.write_file('info.json', data), "
             "ds.read_file('info.json')) or in a tensor's info (create_tensor(..., description=...))"),
    "visualize": "lakefs has no viewer: mount the dataset (`lakefs mount`) and open its files",
    "copy": "copy the dataset's folder, or `lakefs export` its samples as files",
    "delete": "delete the dataset's folder, or start it afresh with lakefs.empty(path, overwrite=True)",
}
