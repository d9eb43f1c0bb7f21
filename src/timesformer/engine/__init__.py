"""The engine: training, evaluation and prediction loops wired to the models and data.

(Each module re-exports with `name as name`, so that every engineer adds only import lines.)
"""

from .build import build_dataset as build_dataset
from .build import build_model as build_model
from .checkpoint import read_training_checkpoint as read_training_checkpoint
from .checkpoint import save_training_checkpoint as save_training_checkpoint
from .config import RunConfig as RunConfig
from .config import load_config as load_config
from .config import resolve as resolve
from .config import save_config as save_config
from .evaluate import EvalResult as EvalResult
from .evaluate import aggregate_views as aggregate_views
from .evaluate import compute_metrics as compute_metrics
from .evaluate import write_eval_outputs as write_eval_outputs
from .extract import VideoFeatures as VideoFeatures
from .extract import extract as extract
from .extract import iter_extract as iter_extract
from .extract_run import run_extract as run_extract
from .optim import LRSchedule as LRSchedule
from .optim import build_optimizer as build_optimizer
from .predict import InferenceSettings as InferenceSettings
from .predict import Prediction as Prediction
from .predict import load_for_inference as load_for_inference
from .train import TrainResult as TrainResult
from .train import train_one_epoch as train_one_epoch
