"""Tools built on the model: benchmarking (`bench`) and attention maps (`explain`)."""
