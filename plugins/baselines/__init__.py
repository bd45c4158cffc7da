"""Reference rows for every comparison: a classical fill (``telea``) and a compact learned
conv net trained with masked L1 (``conv-l1``)."""
