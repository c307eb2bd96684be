"""Only the optional C accelerator; everything else is in pyproject.toml."""

import os

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "faye_websocket._core._speedups",
            sources=["src/faye_websocket/_core/_speedups.c"],
            # Without a compiler (or on a failure) the package installs
            # without it and masks in pure Python. Release wheels set
            # FAYE_WEBSOCKET_REQUIRE_SPEEDUPS=1 (pyproject.toml,
            # [tool.cibuildwheel]) so a failed compile fails the build
            # instead of shipping a platform wheel without the accelerator.
            optional=not os.environ.get("FAYE_WEBSOCKET_REQUIRE_SPEEDUPS"),
        )
    ]
)
