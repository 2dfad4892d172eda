"""Support code for the hands-on course on autoencoders and GANs (Keras 3).

Modules, by role:
    config   run modes (smoke / default / book), seeding, quiet logs, plot defaults
    data     Fashion-MNIST (verified, cached, offline-friendly) and the 3D toy data
    plots    learning curves, image grids, reconstructions, 3D scatter, 2D embeddings
    metrics  rounded accuracy, principal angles between subspaces, reconstruction MSE

The lessons themselves (models, losses, training loops) live in the notebooks.
"""

import os

# TensorFlow reads its C++ log level once, at import time, so it must be set before then; at 3
# only Python-level errors (which still raise) reach the notebook.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
