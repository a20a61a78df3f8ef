"""Packaging lives in pyproject.toml; this file only adds the optional compiled build.

`HARE_COMPILE=1 pip install .` compiles the modules listed in `hare/compiled.py` with mypyc
(it needs a C compiler and the Python headers; mypy and aiormq, whose types it compiles
against, come in as build requirements). Without
`HARE_COMPILE`, the package is pure Python.
"""

import os
import runpy

from setuptools import setup

ext_modules = []
if os.environ.get("HARE_COMPILE") == "1":
    from mypyc.build import mypycify

    modules = runpy.run_path(os.path.join("hare", "compiled.py"))["COMPILED"]
    paths = [name.replace(".", "/") + ".py" for name in modules]
    # mypyc type-checks what the compiled modules import, all of hare: the optional extras
    # (httpx, redis) need not be installed to build, so a missing import is `Any` here.
    ext_modules = mypycify(["--ignore-missing-imports", *paths], opt_level="3")

setup(ext_modules=ext_modules)
