#!/usr/bin/env bash
# Install saga-hsmad into a virtual environment (default .venv beside this file) with Python 3.11.
#   bash install.sh            # package, demo renderer and test tools
#   VENV=/path/to/env bash install.sh
# tinysoundfont (the demo corpus' synthesizer) declares a dependency on pyaudio, which it uses only for
# live playback and which does not build without PortAudio headers; it is installed without it.
# basic-pitch likewise, without TensorFlow.
set -euo pipefail
cd "$(dirname "$0")"
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
"$VENV/bin/python" -c "import saga_hsmad, tinysoundfont; print('saga-hsmad installed in $VENV')"
