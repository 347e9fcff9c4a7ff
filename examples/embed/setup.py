"""The two extensions. Each needs only fastgd's include folder: its kernels are reached at
import time, through fastgd.kernels' capsules, never linked."""
import fastgd
from Cython.Build import cythonize
from setuptools import Extension, setup

include = [fastgd.get_include()]

setup(
    ext_modules=cythonize(
        [Extension("fastgd_embed_example.cytrain",
                   ["src/fastgd_embed_example/cytrain.pyx"], include_dirs=include)],
        compiler_directives={"language_level": 3},
    )
    + [Extension("fastgd_embed_example.ctrain",
                 ["src/fastgd_embed_example/ctrain.c"], include_dirs=include)],
)
