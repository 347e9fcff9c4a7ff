# ``fastgd.functions`` is `fastgd.descent.functions` (the test functions with analytic
# gradients and known minima) under its short, documented name.
from .descent.functions import *  # noqa: F401,F403
from .descent.functions import __all__, __doc__  # noqa: F401
