"""Whole plates, headless: explain every field into a resumable OME-Zarr result store.

- :mod:`.job`: :class:`BatchJob` (what to explain), :class:`BatchReport` (what a run did),
  :func:`plan_fields`, :func:`field_seed`;
- :mod:`.store`: the result store on disk (layout in its docstring), written atomically
  and read back (:func:`read_records`, :func:`read_store_meta`, :func:`read_field_maps`,
  :func:`read_channel_maps`,
  :class:`ResultStore`);
- :mod:`.runner`: :func:`run_plate`, in-process or on dask.distributed.

Each field is written to a temporary sibling folder and renamed into place, so a field
is either complete or absent: a crash or Ctrl-C loses at most the fields in progress,
and a rerun skips the fields already there (and removes a killed run's temp folders).
The store records a fingerprint of the plate (absolute path and metadata hash), model
file, method, target, seed and options; a store made with anything different is refused
(:class:`StoreMismatchError`). A field that cannot be explained raises
:class:`FieldError`, or with ``skip_failed`` is recorded as failed and retried by the
next run. Fields are 0-based in records, CSV and messages.
"""

from napari_pcim.batch.job import BatchJob, BatchReport, field_seed, plan_fields, plate_identity, reading_of
from napari_pcim.batch.runner import FieldError, process_field, run_plate
from napari_pcim.batch.store import (
    FORMAT_KEY,
    ResultStore,
    StoreMismatchError,
    open_store,
    read_channel_maps,
    read_failed,
    read_field_maps,
    read_records,
    read_store_meta,
    write_csv,
)

__all__ = [
    "FORMAT_KEY",
    "BatchJob",
    "BatchReport",
    "FieldError",
    "ResultStore",
    "StoreMismatchError",
    "field_seed",
    "open_store",
    "plan_fields",
    "process_field",
    "read_channel_maps",
    "read_failed",
    "read_field_maps",
    "read_records",
    "read_store_meta",
    "run_plate",
    "write_csv",
]
