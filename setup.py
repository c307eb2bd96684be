"""Only the optional C accelerator; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "faye_websocket._core._speedups",
            sources=["src/faye_websocket/_core/_speedups.c"],
            # Without a compiler (or on a failure) the package installs
            # without it and masks in pure Python.
            optional=True,
        )
    ]
)
