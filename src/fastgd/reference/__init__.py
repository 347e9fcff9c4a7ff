"""Plain-numpy twins of fastgd's native kernels: the readable statement of the math.

Every function here computes, operation by operation, what the corresponding C kernel
computes, in the caller's dtype; the tests hold the native kernels to these.
"""
from . import nn, optim, swa

__all__ = ["nn", "optim", "swa"]
