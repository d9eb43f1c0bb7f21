"""The engine: training, evaluation and prediction loops wired to the models and data.

(Each module re-exports with `name as name`, so that every engineer adds only import lines.)
"""

from .config import RunConfig as RunConfig
from .config import load_config as load_config
from .config import resolve as resolve
from .config import save_config as save_config
