"""The quality benchmark over every bundled model: what ``napari-pcim bench quality`` runs.

:func:`run` benchmarks each bundled model (:mod:`napari_pcim.bench.quality`), optionally
several at once in worker processes, merges the rows and writes the reports; ``quick``
covers **every** bundled model with fewer fields each and cheaper captum settings (CI).
A ``markdown`` file that already has the quality markers (``docs/benchmarks.md``) gets
only the text between them replaced.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

#: Fields per model: the full run and ``--quick``.
FULL_FIELDS, QUICK_FIELDS = 50, 2


def _one_model(args: tuple[str, bool, int, str]) -> Any:
    """Benchmark the bundled model ``name`` (in a worker process with ``--jobs``)."""
    from napari_pcim.bench import quality

    name, quick, n, dev = args
    specs, _ = quality.bundled_specs(dev)
    spec = next(s for s in specs if f"{s.phenotype}_{s.arch}" == name)
    return quality.run_benchmark(
        [spec], n_fields=n,
        method_options=quality.QUICK_OPTIONS if quick else quality.FULL_OPTIONS,
        fidelity=quality.QUICK_FIDELITY if quick else quality.FULL_FIDELITY,
        device=dev, n_boot=500 if quick else 2000,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )


def run(*, quick: bool = False, n_fields: int | None = None, json_out: str | None = None,
        markdown: str | None = None, device: str = "auto", jobs: int = 1,
        command: str | None = None) -> int:
    """Benchmark every bundled model, print the markdown (and the summary line to stderr).

    ``jobs > 1`` benchmarks that many models at once in worker processes (one torch
    thread each); the result is the same as one process's, in the same model order.
    ``command``: how the run was invoked, for the report (default: this module's CLI)."""
    from napari_pcim.bench import quality
    from napari_pcim.bench.quality_report import pcim_vs_rise
    from napari_pcim.devices import resolve_device

    dev = str(resolve_device(device or "auto"))
    n = n_fields or (QUICK_FIELDS if quick else FULL_FIELDS)
    specs, notes = quality.bundled_specs(dev)
    if not specs:
        print("bench quality: no bundled models found (napari_pcim/data/models/*.pt); "
              "train them first (napari-pcim train ...)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    tasks = [(f"{s.phenotype}_{s.arch}", quick, n, dev) for s in specs]
    if jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        os.environ["OMP_NUM_THREADS"] = "1"
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            parts = list(pool.map(_one_model, tasks))
    else:
        parts = [_one_model(t) for t in tasks]
    result = parts[0]
    for part in parts[1:]:
        result.rows += part.rows
        result.notes += part.notes
        result.baseline_check.update(part.baseline_check)
        result.flat.update(part.flat)
    result.settings["jobs"] = jobs
    result.notes[:0] = notes
    result.settings["wall_seconds"] = round(time.perf_counter() - t0, 1)
    result.settings["command"] = command or (
        "napari-pcim bench quality" + (" --quick" if quick else "")
        + f" --fields {n}" + (f" --jobs {jobs}" if jobs > 1 else ""))
    print(quality.write_reports(result, json_out=json_out, markdown=markdown))
    share, _ = quality.pcim_summary(result.rows)
    vs = pcim_vs_rise(result)
    flat = sum(v for k, v in result.flat.items() if k.endswith("/pcim"))
    print(f"bench quality: {len(specs)} models, PCIM best or tied in {share:.0%} of cells; "
          f"PCIM flat maps {flat}; PCIM strictly better than RISE in "
          f"{sum(v[5] for v in vs)} of {len(vs)} fluorescence rank cells; "
          f"{result.settings['wall_seconds']} s", file=sys.stderr)
    return 0
