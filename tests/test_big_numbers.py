"""Numbers beyond what the arrays hold are refused by name, never an OverflowError."""
import numpy as np
import pytest

import fastgd
from fastgd import optim


@pytest.mark.parametrize("lr", [10**400, -(10**400)])
def test_an_integer_beyond_the_float_range_is_not_finite(lr):
    with pytest.raises(ValueError, match="lr must be finite"):
        optim.SGD([np.zeros(2)], lr=lr)
    with pytest.raises(ValueError, match="lr must be finite"):
        fastgd.minimize(lambda x: float(x @ x), [1.0, 2.0], lr=lr)


@pytest.mark.parametrize("step", [2**63, 2**64, 10**30, 1e300])
def test_a_step_count_beyond_int64_is_refused(step):
    p = np.zeros(3)
    opt = optim.Adam([p])
    opt.step([np.ones(3)])
    sd = opt.state_dict()
    sd["state"][0]["step"] = step
    before = opt.state_dict()
    with pytest.raises(ValueError, match=r"\['step'\] must be an integer in 1\.\.2\*\*63-1"):
        opt.load_state_dict(sd)
    assert opt.state_dict()["state"][0]["step"] == before["state"][0]["step"]
