"""Support code for the hands-on course on autoencoders and GANs (Keras 3).

Modules, by role (each module's docstring says more; README.md maps changes to files):
    config              run modes (smoke / default / book), seeding, quiet logs, plot defaults
    data                Fashion-MNIST (verified, cached, offline-friendly), the 3D toy data
    plots               learning curves, image grids (live too), reconstructions, 3D, embeddings
    metrics             rounded accuracy, principal angles, reconstruction MSE, class coverage,
                        Fréchet distance, precision and recall, hashing and codebook measures
    autoencoder_layers  tied dense (NB 3), KL sparsity (NB 7), VAE sampling, latent loss (NB 8)
    gan_layers          minibatch discrimination (NB 9), ProGAN's and StyleGAN's layers (NB 11)
    discrete_layers     VQ-VAE's quantiser, PixelCNN's masked convolution and sampler (NB 13)
    diffusion_layers    time embedding, the U-Net's residual block, the sampler (NB 14)
    training            the two-phase GAN model, experience replay, GAN progress snapshots, the
                        gradient penalty of WGAN-GP, which weights a step moved
    evaluation          the judge classifier for generated images, published models
    checkpoints         train once, reload after: `once(run, nb, name, model).fit(...)` (plumbing)
    report              quality figures for the benchmark, claims checked in the run (plumbing)
    solutions           run a chapter quietly before its solutions, or only its tagged cells
                        (plumbing)
    checks              the checks behind every clear error on bad input (plumbing)
    files               write a file or replace a folder whole, never half (plumbing; every
                        saver, and tools/build_site.py)

The lessons themselves (models, losses, training loops) live in the notebooks.
"""

import os

# TensorFlow reads its C++ log level once, at import time, so it must be set before then; at 3
# only Python-level errors (which still raise) reach the notebook.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
