"""Types of the compiled network program (csrc/_nn.pyx); it re-exports the single ops."""
from typing import Any, List, Optional

import numpy as np

from ._nn_ops import (ACTIVATIONS as ACTIVATIONS, LOSSES as LOSSES,
                      activation_backward as activation_backward,
                      activation_forward as activation_forward,
                      linear_backward as linear_backward, linear_forward as linear_forward,
                      loss as loss, softmax_backward as softmax_backward,
                      softmax_forward as softmax_forward)

class Program:
    nops: int
    typenum: int
    in_features: int
    out_features: int
    capacity: int
    rows: int
    grad_size: int
    def __init__(self, ops: List[tuple], dtype: Any) -> None: ...
    def parameters(self) -> List[np.ndarray]: ...
    def forward(self, X: np.ndarray) -> np.ndarray: ...
    def backward(self, grad_output: np.ndarray, input_grad: bool = ...) -> Optional[np.ndarray]: ...
    def train_batch(self, X: np.ndarray, y: np.ndarray, idx: np.ndarray, start: int, stop: int,
                    loss_kind: str, grad_rows: int = ...) -> float: ...
    def loss_batch(self, X: np.ndarray, y: np.ndarray, idx: np.ndarray, start: int, stop: int,
                   loss_kind: str) -> float: ...
    def train_steps(self, X: np.ndarray, y: np.ndarray, idx: np.ndarray, start: int, stop: int,
                    batch_size: int, loss_kind: str, backup: Optional[object],
                    hooks: List[object], losses: np.ndarray, accumulate: int = ...,
                    reduce: Optional[object] = ...) -> int: ...


class GradientReducer:
    def __init__(self, arena: np.ndarray, allreduce: int, abort: int, comm: int, dtype: int,
                 op: int, in_place: int, pointer_handles: bool, rank: int,
                 size: int) -> None: ...
    def run(self) -> None: ...
    def hook(self) -> object: ...
