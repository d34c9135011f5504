"""fastbptt.experiments: the experiments of `fastbptt experiment` (the code lives in
fastbptt.app.experiments; this module re-exports its public names)."""
from fastbptt.app.experiments import *  # noqa: F401,F403
from fastbptt.app.experiments import __all__  # noqa: F401
