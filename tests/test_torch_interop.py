"""Other libraries' arrays in fastgd.optim and fastgd.functional: updated in place, never a
silent copy; what numpy cannot view in place is refused with a TypeError naming it."""
import array
import ctypes

import numpy as np
import pytest

import fastgd
from fastgd import functional as F

torch = pytest.importorskip("torch")

DTYPES = [np.float32, np.float64]
TORCH = {np.float32: torch.float32, np.float64: torch.float64}


def _model(dtype, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(),
                               torch.nn.Linear(4, 2)).to(TORCH[dtype])


def _backward(model, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 5, generator=g, dtype=TORCH[dtype])
    model.zero_grad()
    model(x).pow(2).mean().backward()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "nadam"])
def test_optimizer_updates_a_torch_model_in_place(dtype, name):
    """opt = fastgd.optim.X([p.detach() ...]); opt.step([p.grad ...]) trains the torch model
    itself, exactly as the same optimizer over numpy copies of it."""
    model = _model(dtype)
    twin = [p.detach().numpy().copy() for p in model.parameters()]
    cls = fastgd.optim.by_name(name)
    opt = cls([p.detach() for p in model.parameters()], lr=0.01)
    ref = cls(twin, lr=0.01)
    for s in range(5):
        _backward(model, dtype, s)
        opt.step([p.grad for p in model.parameters()])
        ref.step([p.grad.numpy().copy() for p in model.parameters()])
    for p, r in zip(model.parameters(), twin):
        np.testing.assert_array_equal(p.detach().numpy(), r)
    assert any(not np.array_equal(p.detach().numpy(), q.detach().numpy())
               for p, q in zip(model.parameters(), _model(dtype).parameters()))
    # the optimizer's arrays are views of the tensors' memory, not copies
    for p, a in zip(model.parameters(), opt.param_groups[0]["params"]):
        assert a.ctypes.data == p.data_ptr()


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_update_of_tensors_in_place(dtype):
    t = TORCH[dtype]
    p, g = torch.linspace(-1, 1, 6, dtype=t), torch.linspace(0.5, 2, 6, dtype=t)
    m, v = torch.zeros(6, dtype=t), torch.zeros(6, dtype=t)
    pn, gn, mn, vn = (x.numpy().copy() for x in (p, g, m, v))
    F.adam_(p, g, m, v, step=1, lr=0.1)
    F.adam_(pn, gn, mn, vn, step=1, lr=0.1)
    np.testing.assert_array_equal(p.numpy(), pn)
    np.testing.assert_array_equal(m.numpy(), mn)
    np.testing.assert_array_equal(v.numpy(), vn)
    # a list of tensors, and NAdam's scalar state as a float64 tensor
    ps = [torch.ones(3, dtype=t), torch.ones(2, 2, dtype=t)]
    gs = [torch.full((3,), 0.5, dtype=t), torch.full((2, 2), -1.0, dtype=t)]
    ms, vs = [torch.zeros_like(x) for x in ps], [torch.zeros_like(x) for x in ps]
    mu = torch.ones(2, dtype=torch.float64)
    F.nadam_(ps, gs, ms, vs, mu, step=1, lr=0.1)
    assert float(mu[0]) != 1.0 and float(mu[0]) == float(mu[1])
    assert all((x != 1).all() for x in ps)


def test_buffer_protocol_and_array_interface():
    a = array.array("d", [1.0, 2.0, 3.0])
    fastgd.optim.SGD([a], lr=0.5).step([array.array("d", [1.0, 1.0, 1.0])])
    assert list(a) == [0.5, 1.5, 2.5]
    buf = (ctypes.c_float * 4)(*[1, 2, 3, 4])
    F.sgd_(buf, np.ones(4, np.float32), None, lr=1.0, momentum=0.0, dampening=0.0,
           weight_decay=0.0, nesterov=False, maximize=False)
    assert list(buf) == [0, 1, 2, 3]

    class Interface:
        def __init__(self, arr):
            self.arr = arr
            self.__array_interface__ = arr.__array_interface__

    base = np.zeros(3)
    opt = fastgd.optim.SGD([Interface(base)], lr=1.0)
    opt.step([Interface(np.ones(3))])
    np.testing.assert_array_equal(base, -np.ones(3))


def test_array_method_is_never_used():
    """An object with only ``__array__`` (which may copy) is refused, not silently copied."""
    class Copies:
        def __array__(self, dtype=None, copy=None):
            return np.zeros(3)

    with pytest.raises(TypeError, match=r"params\[0\] must be a numpy.ndarray or an array"):
        fastgd.optim.SGD([Copies()])
    with pytest.raises(TypeError, match=r"param\[0\] must be a numpy.ndarray"):
        F.sgd_([Copies()], [np.zeros(3)], None, lr=1.0, momentum=0.0, dampening=0.0,
               weight_decay=0.0, nesterov=False, maximize=False)


@pytest.mark.parametrize("make, match", [
    (lambda: torch.nn.Parameter(torch.zeros(3)), r"params\[0\].*pass tensor.detach\(\)"),
    (lambda: torch.zeros(3, dtype=torch.bfloat16), r"params\[0\]: numpy cannot view.*dtype"),
    (lambda: torch.zeros(3, dtype=torch.float16), r"params\[0\] must have dtype float32 or float64"),
    (lambda: torch.zeros(3, dtype=torch.complex64).conj(), r"params\[0\].*conjugate"),
    (lambda: torch.zeros(3).to_sparse(), r"params\[0\].*layout"),
    (lambda: memoryview(bytearray(16)).cast("d").toreadonly(), r"params\[0\] is a read-only"),
    (lambda: torch.zeros(3, 4, device="meta"), r"params\[0\]: numpy cannot view"),
])
def test_what_cannot_be_viewed_in_place_is_a_type_error(make, match):
    with pytest.raises(TypeError, match=match):
        fastgd.optim.Adam([make()])


def test_non_contiguous_tensor_parameter_is_refused():
    with pytest.raises(ValueError, match=r"params\[0\] is not contiguous"):
        fastgd.optim.Adam([torch.zeros(4, 4)[:, ::2]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_foreign_gradients(dtype):
    t = TORCH[dtype]
    p = torch.zeros(2, 3, dtype=t)
    opt = fastgd.optim.SGD([p], lr=1.0)
    opt.step([torch.ones(3, 2, dtype=t).t()])  # strided: copied to the parameter's layout
    np.testing.assert_array_equal(p.numpy(), -np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"grads\[0\] has dtype"):
        opt.step([torch.ones(2, 3, dtype=torch.float32 if dtype == np.float64 else torch.float64)])
    with pytest.raises(TypeError, match=r"grads\[0\].*layout"):
        opt.step([torch.ones(2, 3, dtype=t).to_sparse()])
    with pytest.raises(TypeError, match=r"grads\[0\].*require"):
        opt.step([torch.ones(2, 3, dtype=t, requires_grad=True)])
    with pytest.raises(ValueError, match=r"grads\[0\] shares memory with params\[0\]"):
        opt.step([p])
    np.testing.assert_array_equal(p.numpy(), -np.ones((2, 3)))  # nothing was written
    with pytest.raises(TypeError, match="grads must be a sequence"):
        opt.step(torch.ones(2, 3, dtype=t))


def test_a_single_tensor_as_params_is_refused():
    with pytest.raises(TypeError, match="not a single array"):
        fastgd.optim.Adam(torch.zeros(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_with_tensor_entries(dtype):
    """A state dict whose arrays are tensors (as torch keeps them) loads into fastgd.optim."""
    t = TORCH[dtype]
    p = np.ones(3, dtype)
    opt = fastgd.optim.Adam([p])
    opt.step([np.full(3, 0.5, dtype)])
    sd = opt.state_dict()
    entry = sd["state"][0]
    sd["state"][0] = {"step": torch.tensor(float(entry["step"])),
                      "exp_avg": torch.from_numpy(entry["exp_avg"]),
                      "exp_avg_sq": torch.from_numpy(entry["exp_avg_sq"]).to(t)}
    other = fastgd.optim.Adam([np.ones(3, dtype)])
    other.load_state_dict(sd)
    assert other.state[0]["step"] == 1
    np.testing.assert_array_equal(other.state[0]["exp_avg"], entry["exp_avg"])
