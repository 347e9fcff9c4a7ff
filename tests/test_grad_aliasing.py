"""A gradient may not share memory with anything the update writes: any parameter or any
state array of the group, not only its own (the kernels would read it while another
thread writes it). Gradients may share memory with each other: they are only read."""
import numpy as np
import pytest

from fastgd import functional as F, optim


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_a_gradient_that_is_another_parameter_is_refused(backend):
    a, b = np.ones(1 << 17), np.full(1 << 17, 2.0)
    opt = optim.SGD([a, b], lr=0.1, backend=backend)
    with pytest.raises(ValueError, match=r"grads\[0\] shares memory with params\[1\]"):
        opt.step([b, a])
    np.testing.assert_array_equal(a, 1.0)
    np.testing.assert_array_equal(b, 2.0)


def test_a_gradient_inside_another_parameters_state_is_refused():
    a, b = np.ones((3, 4)), np.ones(12)
    opt = optim.Adam([a, b])
    opt.step([np.ones((3, 4)), np.ones(12)])
    exp_avg_of_b = opt.state[1]["exp_avg"]
    with pytest.raises(ValueError, match=r"grads\[0\] shares memory with optimizer state "
                                         r"exp_avg\[1\]"):
        opt.step([exp_avg_of_b.reshape(3, 4), None])
    with pytest.raises(ValueError, match=r"grads\[0\] shares memory with optimizer state"):
        opt.bind([exp_avg_of_b.reshape(3, 4), np.ones(12)])
    assert opt.state[0]["step"] == 1


def test_a_gradient_overlapping_part_of_a_parameter_is_refused():
    buf = np.zeros(20)
    p, q = buf[:10], np.zeros(10)
    opt = optim.SGD([p, q], lr=0.1)
    with pytest.raises(ValueError, match=r"grads\[1\] shares memory with params\[0\]"):
        opt.step([np.ones(10), buf[5:15]])


def test_gradients_may_share_memory_with_each_other():
    a, b = np.zeros(5), np.zeros(5)
    g = np.ones(5)
    optim.SGD([a, b], lr=0.5).step([g, g])
    np.testing.assert_array_equal(a, -0.5)
    np.testing.assert_array_equal(b, -0.5)


def test_functional_refuses_a_gradient_that_is_another_parameter():
    a, b = np.ones(4), np.ones(4)
    with pytest.raises(ValueError, match="grad"):
        F.sgd_([a, b], [b, a], lr=0.1)
