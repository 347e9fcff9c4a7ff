"""Layers, losses and models with backpropagation by the chain rule.

Every layer and loss takes ``backend="native"`` (BLAS products and C kernels) or
``backend="reference"`` (plain numpy: the readable math). ``Sequential`` compiles a native
model into one program that runs every layer in C.
"""
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .linear import Linear
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import Module
from .sequential import MLP, Sequential
from . import utils

__all__ = ["utils", "Module", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Identity",
           "MSELoss", "CrossEntropyLoss", "BCEWithLogitsLoss", "Sequential", "MLP"]
