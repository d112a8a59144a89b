#!/usr/bin/env bash
# Check the Debian packages napari needs under a virtual X display (Xvfb + OpenGL + Qt's xcb).
# Root: installs what is missing. Anyone else: prints the exact apt line and exits 1.
set -euo pipefail

PACKAGES=(xvfb xauth libgl1 libgl1-mesa-dri libegl1 libxkbcommon-x11-0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "system_deps: not a Debian-like system; make sure Xvfb and OpenGL libraries are installed." >&2
    command -v xvfb-run >/dev/null 2>&1 || { echo "system_deps: xvfb-run not found." >&2; exit 1; }
    exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    echo "system_deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "system_deps: napari's tests need these Debian packages, which are missing:" >&2
    echo "    sudo sh -c '$line'" >&2
    echo "Run that line (as root), then run the test command again." >&2
    exit 1
fi
