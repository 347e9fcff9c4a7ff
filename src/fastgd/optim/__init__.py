"""Optimizers with PyTorch's names, defaults and update rules, for numpy arrays.

>>> import numpy as np, fastgd
>>> w = np.zeros(4, dtype=np.float32)
>>> opt = fastgd.optim.Adam([w], lr=0.01)
>>> opt.step([np.ones(4, dtype=np.float32)])
"""
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]
