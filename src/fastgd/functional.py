# ``fastgd.functional`` is `fastgd.optim.functional` (the optimizer updates as in-place
# functions) under its short, documented name.
from .optim.functional import *  # noqa: F401,F403
from .optim.functional import __all__, __doc__  # noqa: F401
