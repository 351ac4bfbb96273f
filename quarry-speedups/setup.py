"""Builds ``quarry_speedups._cbor`` from Cython (the rest of the metadata is in pyproject.toml)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("quarry_speedups._cbor", ["src/quarry_speedups/_cbor.pyx"], extra_compile_args=["-O2"])],
        compiler_directives={"language_level": "3"},
    )
)
