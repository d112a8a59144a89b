#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) for `make demo` / `make test`.
# - Creates .venv when missing.
# - Installs torch only when none is present: `torch==2.13.0`, which resolves to the CPU
#   build on disk on machines that carry one (pip's find-links). An existing torch, such as
#   a CUDA build a GPU user installed, is left alone.
# - Installs the package editable with its test extra; skipped when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp="$VENV/.napari-pcim-installed"

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    echo "bootstrap: no torch in $VENV; installing $TORCH_SPEC (CPU build where one is on disk)"
    "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" || true
    "$VENV/bin/python" -c "import torch" || { echo "bootstrap: installing $TORCH_SPEC failed" >&2; exit 1; }
fi

if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ napari.yaml -nt "$stamp" ]; then
    echo "bootstrap: installing napari-pcim (editable, with test and baseline extras)"
    "$VENV/bin/python" -m pip install --quiet -e ".[testing,baselines,scale]" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" || true
    "$VENV/bin/python" -c "import napari_pcim" || { echo "bootstrap: installing napari-pcim failed" >&2; exit 1; }
    "$VENV/bin/python" -c "import napari_pcim, torch; print('bootstrap: napari-pcim', napari_pcim.__version__, 'with torch', torch.__version__)"
    touch "$stamp"
fi
