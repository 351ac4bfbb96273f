"""Builds ``quarry_speedups._cbor`` (the decoder) and ``quarry_speedups._encode`` (the encoder) from Cython (the
rest of the metadata is in pyproject.toml)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension("quarry_speedups._cbor", ["src/quarry_speedups/_cbor.pyx"], extra_compile_args=["-O2"]),
            Extension("quarry_speedups._encode", ["src/quarry_speedups/_encode.pyx"], extra_compile_args=["-O2"]),
        ],
        compiler_directives={"language_level": "3"},
    )
)
