"""Types of fastgd.kernels (csrc/kernels.pyx): the embedding API's module. Its kernels are
cdef functions for Cython (kernels.pxd) and a capsule for C (<fastgd/fastgd.h>)."""
from typing import Any

ABI_VERSION: tuple[int, int]
_C_API: Any
__pyx_capi__: dict[str, Any]

def _set_flush_denormal(mode: bool) -> bool: ...
def _get_flush_denormal() -> bool: ...
