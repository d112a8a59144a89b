"""Run the quality benchmark on every bundled model: ``python -m napari_pcim.bench.quality_cli``.

The same run as ``napari-pcim bench quality`` (:mod:`napari_pcim.bench.quality`), with
``--quick`` covering **every** bundled model (fewer fields each, cheaper captum
settings), for CI. ``--markdown docs/benchmarks.md`` replaces only the text between the
file's quality markers. :func:`run` is what the CLI handler can delegate to.
"""

from __future__ import annotations

import argparse
import sys
import time

#: Fields per model: the full run and ``--quick``.
FULL_FIELDS, QUICK_FIELDS = 50, 3


def run(*, quick: bool = False, n_fields: int | None = None, json_out: str | None = None,
        markdown: str | None = None, device: str = "auto") -> int:
    """Benchmark every bundled model, print the markdown (and the summary line to stderr)."""
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
    result = quality.run_benchmark(
        specs, n_fields=n,
        method_options=quality.QUICK_OPTIONS if quick else quality.FULL_OPTIONS,
        fidelity=quality.QUICK_FIDELITY if quick else quality.FULL_FIDELITY,
        device=dev, n_boot=500 if quick else 2000,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    result.notes[:0] = notes
    result.settings["wall_seconds"] = round(time.perf_counter() - t0, 1)
    result.settings["command"] = (
        "napari-pcim bench quality" + (" --quick" if quick else "") + f" --fields {n}")
    print(quality.write_reports(result, json_out=json_out, markdown=markdown))
    share, lost = quality.pcim_summary(result.rows)
    vs = pcim_vs_rise(result)
    flat = sum(v for k, v in result.flat.items() if k.endswith("/pcim"))
    print(f"bench quality: {len(specs)} models, PCIM best or tied in {share:.0%} of cells; "
          f"PCIM flat maps {flat}; PCIM strictly better than RISE in "
          f"{sum(v[5] for v in vs)} of {len(vs)} fluorescence rank cells; "
          f"{result.settings['wall_seconds']} s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m napari_pcim.bench.quality_cli")
    p.add_argument("--quick", action="store_true", help="every model, few fields (CI)")
    p.add_argument("--fields", type=int, default=None)
    p.add_argument("--json", dest="json_out")
    p.add_argument("--markdown")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    return run(quick=a.quick, n_fields=a.fields, json_out=a.json_out, markdown=a.markdown,
               device=a.device)


if __name__ == "__main__":
    raise SystemExit(main())
