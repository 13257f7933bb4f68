"""lakefs: a chunked dataset store for deep learning, mountable as a filesystem."""
