"""Benchmarks behind ``napari-pcim bench``: ``speed`` (explainer wall time, the forward-pass
floor and RISE's memory), ``quality`` (localisation and fidelity) and ``ui`` (viewer stalls)."""
