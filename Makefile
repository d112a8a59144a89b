# napari-pcim: the two commands of README.md.
#   make demo   napari with the demo plate, the bundled classifier and the widgets
#   make test   the whole test suite under a virtual X display
# Both create or update .venv first (scripts/bootstrap.sh).

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
XVFB := xvfb-run -a -s "-screen 0 1600x1200x24"
# The demo's screenshot window is 1920×1080 (napari-pcim demo --screenshot): a screen that holds it.
XVFB_DEMO := xvfb-run -a -s "-screen 0 1920x1200x24"

.PHONY: demo test env sysdeps bench clean

env:
	@bash scripts/bootstrap.sh

sysdeps:
	@bash scripts/system_deps.sh

demo: env
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(VENV)/bin/napari-pcim demo; \
	else \
		$(MAKE) --no-print-directory sysdeps; \
		echo "demo: no display found; running the demo under Xvfb and saving demo-screenshot.png"; \
		$(XVFB_DEMO) $(VENV)/bin/napari-pcim demo --screenshot demo-screenshot.png; \
	fi

test: env sysdeps
	$(XVFB) $(PY) -m pytest $(PYTEST_ARGS)

bench: env sysdeps
	$(VENV)/bin/napari-pcim bench speed
	$(VENV)/bin/napari-pcim bench quality --quick
	$(XVFB) $(VENV)/bin/napari-pcim bench ui

clean:
	rm -rf $(VENV) build dist .pytest_cache
