"""Benchmarks behind ``napari-pcim bench``: ``speed`` (explainer wall time, the forward-pass
floor and RISE's memory), ``quality`` (localisation and fidelity), ``plate`` (whole-plate
fields/minute in-process and on dask, with a cost model). ``ui`` (viewer stalls) needs napari,
so it lives on the napari side, in :mod:`napari_pcim._napari.bench_ui`.
The command-line handlers live in :mod:`napari_pcim.cli.bench`."""
