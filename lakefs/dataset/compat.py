"""What a script ported from Deep Lake v3 reaches for that lakefs does not have, and what
to use instead: one table per place it shows (``create_tensor``'s arguments here), so a
ported script gets an error that names the lakefs way instead of a setting kept as inert
``info`` or a misleading "no such tensor"."""

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
