#!/usr/bin/env bash
# Install saga-hsmad into a virtual environment (default .venv beside this file) with Python 3.11.
#   bash install.sh            # package, demo renderer and test tools (as root with apt-get: also Chromium)
#   VENV=/path/to/env bash install.sh
# tinysoundfont (the demo corpus' synthesizer) declares a dependency on pyaudio, which it uses only for
# live playback and which does not build without PortAudio headers; it is installed without it.
# basic-pitch likewise, without TensorFlow.
set -euo pipefail
cd "$(dirname "$0")"
# Chromium for the web page's browser test (tests/test_app_server.py), from Debian's packages, driven by the
# playwright Python package with executable_path (no browser download). Only as root where apt-get exists;
# elsewhere, or if the install fails, that one test is skipped and says why.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium fonts-dejavu-core iproute2 >/dev/null) \
            || echo "install.sh: could not install chromium with apt-get; the browser test will be skipped" >&2
    else
        echo "install.sh: chromium not found and apt-get not usable as root; the browser test will be skipped" >&2
    fi
fi
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade "pip<26" "setuptools<81" wheel
"$VENV/bin/python" -m pip install --quiet -e ".[test]"
"$VENV/bin/python" -m pip install --quiet --no-deps "tinysoundfont==0.3.7"
# basic-pitch (HS-MAD evaluation transcriber) ships its ONNX model; its declared TensorFlow dependency is
# not needed to run that model through onnxruntime, which setup.py installs.
"$VENV/bin/python" -m pip install --quiet --no-deps "basic-pitch==0.4.0"
# stable-audio-tools' own scripts (train.py, defaults.ini, unwrap_model.py) are in its repository, not in its wheel;
# tests/test_sat_scripts.py runs them through python -m saga_hsmad.cli.sat. They are fetched at the 0.0.19 commit
# into $VENV/share/stable-audio-tools and checked against their sha256; without network those tests are skipped.
"$VENV/bin/python" - "$VENV/share/stable-audio-tools" <<'PY'
import hashlib, pathlib, sys, urllib.request
url = "https://raw.githubusercontent.com/Stability-AI/stable-audio-tools/d7e78b09ace664ccc84256e133b3317d18b8a425/"
files = {"train.py": "67e8cc116af1381e5bba88c8e2660c62b102b59a1ed2f0cdee90138cdcf03b02",
         "defaults.ini": "4c2e61858755de6cf538c58d721c73b3c36e711baf202fd8561c2d1ade1da6ae",
         "unwrap_model.py": "71ec0a1c6625ed42a0a8a2c7c8568e56c43ffb30fc7088dcfbca9a215af18855",
         "LICENSE": "a1fac33b7bcd791b74fb33aeb439f825e7277e239fc119fb7d2ab6f084a0c101"}
folder = pathlib.Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
for name, sha in files.items():
    if (folder / name).is_file() and hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha:
        continue
    try:
        data = urllib.request.urlopen(url + name, timeout=30).read()
    except OSError as e:
        print(f"WARNING stable-audio-tools' {name} not fetched ({e}); tests/test_sat_scripts.py will skip")
        continue
    if hashlib.sha256(data).hexdigest() != sha:
        print(f"WARNING stable-audio-tools' {name}: unexpected content, not installed")
        continue
    (folder / name).write_bytes(data)
PY
"$VENV/bin/python" -c "import saga_hsmad, tinysoundfont; print('saga-hsmad installed in $VENV')"
