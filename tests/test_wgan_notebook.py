"""Notebook 12's networks and training classes, run from the notebook's own cells: the label
reaches both conditional networks, the critic ends without a sigmoid, every network reloads in
safe mode, each phase of the conditional GAN updates its own network only, and one WGAN-GP step
takes N_CRITIC critic updates, each on its own real batch, then one generator update."""

from pathlib import Path

import keras
import numpy as np
import pytest

from course_utils import training
from course_utils.solutions import run_tagged_cells
from course_utils.training import copy_weights, weights_moved

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / (
    "12_conditional_and_wasserstein_gans.ipynb")


@pytest.fixture(scope="module")
def cells():
    return run_tagged_cells(NOTEBOOK, ["networks", "conditional-gan", "wgan-gp"], namespace={
        "np": np, "training": training, "CODINGS_SIZE": 100, "N_CLASSES": 10})


def test_parameter_counts_follow_from_the_dcgan_plus_one_vector_per_class(cells):
    build_generator, build_discriminator = cells["build_generator"], cells["build_discriminator"]
    assert build_generator().count_params() == 840_705  # notebook 10's generator
    assert build_discriminator().count_params() == 212_865  # notebook 10's discriminator
    assert build_generator(10).count_params() == 840_705 + 10 * 6_272  # one vector per class
    assert build_discriminator(10).count_params() == 212_865 + 10 * 6_272
    assert build_discriminator(critic=True).count_params() == 212_865


def test_the_label_changes_what_both_conditional_networks_compute(cells):
    keras.utils.set_random_seed(0)
    generator, discriminator = cells["build_generator"](10), cells["build_discriminator"](10)
    codings = np.random.default_rng(0).standard_normal((2, 100)).astype("float32")
    same_codings = np.repeat(codings[:1], 2, axis=0)
    images = np.asarray(generator([same_codings, np.array([3, 7])]))
    assert images.shape == (2, 28, 28, 1) and not np.allclose(images[0], images[1])
    # Class vectors e_y (the Dense layer without bias) move the verdict on the same image.
    dense = [layer for layer in discriminator.layers
             if isinstance(layer, keras.layers.Dense) and not layer.use_bias]
    assert len(dense) == 1 and dense[0].kernel.shape == (10, 6_272)
    dense[0].kernel.assign(np.random.default_rng(1).normal(size=(10, 6_272)).astype("float32"))
    image = np.repeat(images[:1], 2, axis=0)
    verdicts = np.asarray(discriminator([image, np.array([3, 7])], training=False))
    assert not np.isclose(verdicts[0, 0], verdicts[1, 0])


def test_the_critic_scores_without_a_sigmoid_and_without_dropout(cells):
    critic = cells["build_discriminator"](critic=True)
    assert not any(isinstance(layer, keras.layers.Dropout | keras.layers.Activation)
                   for layer in critic.layers)
    assert critic.layers[-1].activation is keras.activations.linear
    discriminator = cells["build_discriminator"]()
    assert discriminator.layers[-1].get_config()["activation"] == "sigmoid"


@pytest.mark.parametrize("which", ["generator", "discriminator", "critic"])
def test_every_conditional_network_reloads_in_safe_mode(cells, which, tmp_path):
    keras.utils.set_random_seed(2)
    model = {"generator": lambda: cells["build_generator"](10),
             "discriminator": lambda: cells["build_discriminator"](10),
             "critic": lambda: cells["build_discriminator"](critic=True)}[which]()
    path = tmp_path / f"{which}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    rng = np.random.default_rng(3)
    if which == "generator":
        inputs = [rng.standard_normal((3, 100)).astype("float32"), np.array([0, 4, 9])]
    elif which == "discriminator":
        inputs = [rng.random((3, 28, 28, 1)).astype("float32"), np.array([0, 4, 9])]
    else:
        inputs = rng.random((3, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(reloaded(inputs)), np.asarray(model(inputs)),
                               atol=1e-6)


def test_each_conditional_phase_trains_its_own_network_only(cells):
    keras.utils.set_random_seed(4)
    gan = cells["ConditionalGAN"](cells["build_generator"](10), cells["build_discriminator"](10),
                                  codings_size=100, seed=5)
    gan.compile(d_optimizer=keras.optimizers.RMSprop(1e-3),
                g_optimizer=keras.optimizers.RMSprop(1e-3))
    real = np.random.default_rng(6).uniform(-1, 1, (8, 28, 28, 1)).astype("float32")
    labels = np.arange(8) % 10
    g_before = copy_weights(gan.generator.trainable_weights)
    d_before = copy_weights(gan.discriminator.trainable_weights)
    gan.train_discriminator(real, labels)
    assert all(weights_moved(d_before, gan.discriminator.trainable_weights))
    assert not any(weights_moved(g_before, gan.generator.trainable_weights))
    d_before = copy_weights(gan.discriminator.trainable_weights)
    gan.train_generator(8)
    assert all(weights_moved(g_before, gan.generator.trainable_weights))
    assert not any(weights_moved(d_before, gan.discriminator.trainable_weights))


def test_a_wgan_gp_step_takes_n_critic_critic_updates_then_one_generator_update(cells):
    keras.utils.set_random_seed(7)
    n_critic = cells["N_CRITIC"]
    wgan = cells["WGANGP"](cells["build_generator"](), cells["build_discriminator"](critic=True),
                           codings_size=100, seed=8)
    wgan.compile(critic_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9),
                 g_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9))
    real = np.random.default_rng(9).uniform(-1, 1, (n_critic * 4, 28, 28, 1)).astype("float32")
    logs = wgan.train_step(keras.ops.convert_to_tensor(real))
    assert int(wgan.critic_optimizer.iterations.numpy()) == n_critic == 5
    assert int(wgan.g_optimizer.iterations.numpy()) == 1
    assert sorted(logs) == ["critic_loss", "g_loss", "penalty", "w_estimate"]
    assert cells["GP_WEIGHT"] == 10.0
    # The critic's loss is -W + lambda * penalty, all from the same (last) critic step.
    expected = -float(logs["w_estimate"]) + 10.0 * float(logs["penalty"])
    assert float(logs["critic_loss"]) == pytest.approx(expected, rel=1e-4, abs=1e-4)
