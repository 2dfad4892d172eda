"""Notebook 13's pieces: the vector quantiser (nearest entry, straight-through gradient), masked
convolutions (causality), the PixelCNN sampler, and the hashing and codebook metrics, against
their formulas, with their errors and safe-mode reloads."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import norm

from course_utils import discrete_layers, metrics


def _vectors(seed=0, shape=(3, 4, 4, 5)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _quantizer(n_codes=8, code_dim=5, seed=1):
    quantizer = discrete_layers.VectorQuantizer(n_codes, code_dim)
    quantizer.build((None, code_dim))
    quantizer.codebook.assign(np.random.default_rng(seed).normal(size=(n_codes, code_dim)))
    return quantizer


# --- VectorQuantizer -----------------------------------------------------------------------

def test_codes_are_the_nearest_entries_by_brute_force():
    quantizer, vectors = _quantizer(), _vectors()
    codebook = quantizer.codebook.numpy()
    squared = ((vectors[..., None, :] - codebook) ** 2).sum(axis=-1)
    np.testing.assert_array_equal(np.asarray(quantizer.codes(vectors)), squared.argmin(axis=-1))
    assert quantizer.codes(vectors).shape == (3, 4, 4)


def test_forward_pass_returns_the_nearest_codebook_vectors():
    quantizer, vectors = _quantizer(), _vectors()
    expected = quantizer.codebook.numpy()[np.asarray(quantizer.codes(vectors))]
    np.testing.assert_allclose(np.asarray(quantizer(vectors)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(quantizer.lookup(quantizer.codes(vectors))), expected,
                               rtol=1e-6)


def test_gradient_passes_straight_through_to_the_inputs_and_not_to_the_codebook():
    quantizer = _quantizer()
    vectors = tf.Variable(_vectors())
    weights = _vectors(seed=5)
    with tf.GradientTape(persistent=True) as tape:
        loss = tf.reduce_sum(weights * quantizer(vectors))
    # d(sum(w * q(z)))/dz = w: the quantiser acts as the identity backwards.
    np.testing.assert_allclose(tape.gradient(loss, vectors).numpy(), weights, rtol=1e-6)
    codebook_gradient = tape.gradient(loss, quantizer.codebook)
    assert codebook_gradient is None or not np.any(np.asarray(codebook_gradient))


def test_lookup_carries_gradient_to_the_chosen_entries_only():
    quantizer, vectors = _quantizer(), _vectors()
    indices = np.asarray(quantizer.codes(vectors))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(quantizer.lookup(indices))
    gradient = tf.convert_to_tensor(tape.gradient(loss, quantizer.codebook)).numpy()
    counts = np.bincount(indices.ravel(), minlength=8)
    np.testing.assert_allclose(gradient, np.repeat(counts[:, None], 5, axis=1))


def test_quantizer_errors_say_what_to_change():
    with pytest.raises(ValueError, match="end with a dimension of 5"):
        discrete_layers.VectorQuantizer(8, 5)(_vectors(shape=(2, 3, 3, 4)))
    with pytest.raises(ValueError, match="n_codes must be at least 2"):
        discrete_layers.VectorQuantizer(1, 5)
    with pytest.raises(TypeError, match="code_dim must be an integer"):
        discrete_layers.VectorQuantizer(8, 2.5)


def test_quantizer_reloads_in_safe_mode_with_its_codebook(tmp_path):
    inputs = keras.Input(shape=(4, 4, 5))
    model = keras.Model(inputs, discrete_layers.VectorQuantizer(8, 5, name="vq")(inputs))
    model.get_layer("vq").codebook.assign(np.random.default_rng(3).normal(size=(8, 5)))
    model.save(tmp_path / "vq.keras")
    reloaded = keras.saving.load_model(tmp_path / "vq.keras", safe_mode=True)
    vectors = _vectors()
    np.testing.assert_allclose(reloaded.predict(vectors, verbose=0),
                               model.predict(vectors, verbose=0))
    assert reloaded.get_layer("vq").get_config()["n_codes"] == 8


# --- masked convolutions -------------------------------------------------------------------

def test_causal_masks_keep_rows_above_and_pixels_to_the_left():
    expected_a = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype="float32")
    np.testing.assert_array_equal(discrete_layers.causal_mask(3, "A"), expected_a)
    expected_b = expected_a.copy()
    expected_b[1, 1] = 1
    np.testing.assert_array_equal(discrete_layers.causal_mask(3, "B"), expected_b)
    assert discrete_layers.causal_mask(5, "A").sum() == 12  # two rows of 5, then 2 to the left


@pytest.mark.parametrize(("kernel_size", "mask_type", "message"), [
    (4, "A", "must be odd"), (3, "C", 'mask_type must be "A"'), (0, "A", "at least 1")])
def test_causal_mask_errors(kernel_size, mask_type, message):
    with pytest.raises(ValueError, match=message):
        discrete_layers.causal_mask(kernel_size, mask_type)


def test_masked_conv_equals_a_plain_convolution_with_the_masked_kernel():
    layer = discrete_layers.MaskedConv2D(4, 3, mask_type="B", activation="relu")
    maps = _vectors(shape=(2, 5, 5, 3))
    result = np.asarray(layer(maps))
    layer.bias.assign(np.arange(4, dtype="float32") / 10)
    result = np.asarray(layer(maps))
    plain = keras.layers.Conv2D(4, 3, padding="same", activation="relu")
    plain.build(maps.shape)
    plain.set_weights([layer.kernel.numpy() * discrete_layers.causal_mask(3, "B")[:, :, None, None],
                       layer.bias.numpy()])
    np.testing.assert_allclose(result, np.asarray(plain(maps)), rtol=1e-5, atol=1e-6)


def _causal_stack():
    inputs = keras.Input(shape=(5, 5, 2))
    hidden = discrete_layers.MaskedConv2D(6, 3, mask_type="A", activation="relu")(inputs)
    for _ in range(3):
        hidden = discrete_layers.MaskedConv2D(6, 3, mask_type="B", activation="relu")(hidden)
    return keras.Model(inputs, discrete_layers.MaskedConv2D(3, 3, mask_type="B")(hidden))


@pytest.mark.parametrize("position", [0, 7, 12, 24])
def test_a_stack_starting_with_type_a_never_sees_its_own_or_later_inputs(position):
    keras.utils.set_random_seed(0)
    model = _causal_stack()
    maps = _vectors(shape=(1, 5, 5, 2))
    changed = maps.copy()
    row, col = divmod(position, 5)
    changed[0, row, col] += 10.0
    difference = np.abs(np.asarray(model(changed)) - np.asarray(model(maps))).sum(axis=-1)[0]
    raster = np.arange(25).reshape(5, 5)
    assert np.all(difference[raster <= position] == 0)
    if position < 24:  # some later output must depend on it, or the test proves nothing
        assert difference[raster > position].max() > 0


def test_type_b_sees_the_centre_and_type_a_does_not():
    maps = _vectors(shape=(1, 3, 3, 1))
    changed = maps.copy()
    changed[0, 1, 1] += 5.0
    for mask_type, sees_centre in (("A", False), ("B", True)):
        layer = discrete_layers.MaskedConv2D(2, 3, mask_type=mask_type)
        moved = np.abs(np.asarray(layer(changed)) - np.asarray(layer(maps)))[0, 1, 1].sum()
        assert (moved > 0) == sees_centre


def test_masked_conv_errors_and_reload(tmp_path):
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        discrete_layers.MaskedConv2D(2, 3)(np.zeros((2, 5, 5), dtype="float32"))
    with pytest.raises(ValueError, match="must be odd"):
        discrete_layers.MaskedConv2D(2, 2)
    model = _causal_stack()
    model.save(tmp_path / "masked.keras")
    reloaded = keras.saving.load_model(tmp_path / "masked.keras", safe_mode=True)
    maps = _vectors(shape=(2, 5, 5, 2))
    np.testing.assert_allclose(reloaded.predict(maps, verbose=0), model.predict(maps, verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert reloaded.layers[1].get_config()["mask_type"] == "A"


# --- PixelCNNSampler -----------------------------------------------------------------------

def _constant_prior(probabilities, grid=(3, 4)):
    """Logits log(p) at every position, whatever the grid holds."""
    inputs = keras.Input(shape=grid, dtype="int32")
    embedding = keras.layers.Embedding(len(probabilities), len(probabilities))
    model = keras.Model(inputs, embedding(inputs))
    embedding.set_weights([np.tile(np.log(probabilities), (len(probabilities), 1))])
    return model


def test_sampler_draws_each_code_by_the_inverse_cdf_of_its_coding():
    probabilities = np.array([0.1, 0.2, 0.3, 0.4])
    sampler = discrete_layers.PixelCNNSampler(_constant_prior(probabilities))
    codings = np.random.default_rng(0).normal(size=(50, 12)).astype("float32")
    grids = np.asarray(sampler(codings))
    expected = np.searchsorted(np.cumsum(probabilities), norm.cdf(codings)).reshape(50, 3, 4)
    np.testing.assert_array_equal(grids, np.minimum(expected, 3))
    assert grids.dtype == np.int32


def _successor_prior(n_codes=5, grid=(3, 4)):
    """Puts all its mass on (the code to the left + 1) mod n_codes; uniform in column 0."""
    inputs = keras.Input(shape=grid, dtype="int32")
    one_hot = keras.layers.Embedding(n_codes, n_codes)
    conv = discrete_layers.MaskedConv2D(n_codes, 3, mask_type="A")
    model = keras.Model(inputs, conv(one_hot(inputs)))
    one_hot.set_weights([np.eye(n_codes, dtype="float32")])
    kernel = np.zeros((3, 3, n_codes, n_codes), dtype="float32")
    for code in range(n_codes):
        kernel[1, 0, code, (code + 1) % n_codes] = 50.0  # the left neighbour, centre row
    conv.set_weights([kernel, np.zeros(n_codes, dtype="float32")])
    return model


def test_sampler_conditions_each_position_on_the_codes_already_drawn():
    sampler = discrete_layers.PixelCNNSampler(_successor_prior())
    codings = np.random.default_rng(1).normal(size=(20, 12)).astype("float32")
    grids = np.asarray(sampler(codings))
    np.testing.assert_array_equal(grids[:, :, 1:], (grids[:, :, :-1] + 1) % 5)
    # Column 0 sees only zero padding on its left (and earlier rows, which the kernel ignores):
    # uniform logits, so the inverse CDF of a uniform distribution over 5 codes.
    uniform_codes = np.minimum(np.floor(norm.cdf(codings.reshape(20, 3, 4)[:, :, 0]) * 5), 4)
    np.testing.assert_array_equal(grids[:, :, 0], uniform_codes)


def test_sampler_errors_and_reload(tmp_path):
    with pytest.raises(TypeError, match="keras.Model"):
        discrete_layers.PixelCNNSampler(lambda grid: grid)
    flat_grid = keras.Input(shape=(6,), dtype="int32")
    flat_prior = keras.Model(flat_grid, keras.layers.Embedding(3, 3)(flat_grid))
    with pytest.raises(ValueError, match=r"\(batch, height, width\)"):
        discrete_layers.PixelCNNSampler(flat_prior)
    with pytest.raises(ValueError, match=r"shaped \(n, 12\)"):
        discrete_layers.PixelCNNSampler(_successor_prior())(np.zeros((2, 10), dtype="float32"))
    generator = keras.Sequential([keras.Input(shape=(12,)),
                                  discrete_layers.PixelCNNSampler(_successor_prior())])
    generator.save(tmp_path / "sampler.keras")
    reloaded = keras.saving.load_model(tmp_path / "sampler.keras", safe_mode=True)
    codings = np.random.default_rng(2).normal(size=(8, 12)).astype("float32")
    np.testing.assert_array_equal(reloaded.predict(codings, verbose=0),
                                  generator.predict(codings, verbose=0))


# --- hashing and codebook metrics ----------------------------------------------------------

def test_pack_bits_reads_each_row_as_binary_digits_lowest_first():
    packed = metrics.pack_bits(np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]]))
    np.testing.assert_array_equal(packed, [5, 0, 7])
    assert packed.dtype == np.uint64
    assert metrics.pack_bits(np.ones((1, 64), dtype=bool))[0] == np.uint64(2**64 - 1)


@pytest.mark.parametrize(("bits", "message"), [
    (np.array([[0.2, 1.0]]), "must be 0 or 1"), (np.ones(4), "1 to 64 bits"),
    (np.ones((2, 65)), "1 to 64 bits")])
def test_pack_bits_errors(bits, message):
    with pytest.raises(ValueError, match=message):
        metrics.pack_bits(bits)


def test_hamming_distances_count_differing_bits():
    bits = np.random.default_rng(0).integers(0, 2, size=(30, 16))
    packed = metrics.pack_bits(bits)
    expected = (bits[:5, None, :] != bits[None, :, :]).sum(axis=-1)
    np.testing.assert_array_equal(metrics.hamming_distances(packed[:5], packed), expected)
    with pytest.raises(ValueError, match="pack_bits first"):
        metrics.hamming_distances(bits[:2], packed)


def test_precision_at_k_shares_tied_items_by_their_chance_of_being_kept():
    # One same-class item closer than the k-th distance, then 3 tied items of which 1 is the
    # query's class, for 1 place: (1 + 1/3) / 2.
    distances = np.array([[0, 1, 1, 1]])
    assert metrics.precision_at_k(distances, np.array([0]), np.array([0, 0, 1, 1]), k=2) == (
        pytest.approx(2 / 3))


def test_precision_at_k_matches_the_mean_over_random_tie_breaks():
    rng = np.random.default_rng(1)
    distances = rng.integers(0, 4, size=(6, 40))
    query_labels, database_labels = rng.integers(0, 3, 6), rng.integers(0, 3, 40)
    estimates = []
    for _ in range(3000):
        order = np.lexsort((rng.random(distances.shape), distances), axis=1)[:, :5]
        estimates.append(np.mean(database_labels[order] == query_labels[:, None]))
    assert metrics.precision_at_k(distances, query_labels, database_labels, k=5) == (
        pytest.approx(np.mean(estimates), abs=0.01))


def test_precision_at_k_without_ties_is_the_plain_nearest_neighbour_precision():
    rng = np.random.default_rng(2)
    distances = rng.random((4, 30))
    query_labels, database_labels = rng.integers(0, 2, 4), rng.integers(0, 2, 30)
    nearest = np.argsort(distances, axis=1)[:, :3]
    expected = np.mean(database_labels[nearest] == query_labels[:, None])
    assert metrics.precision_at_k(distances, query_labels, database_labels, k=3) == (
        pytest.approx(expected))


def test_precision_at_k_errors():
    with pytest.raises(ValueError, match=r"shaped \(n_queries, n_database\) = \(2, 3\)"):
        metrics.precision_at_k(np.zeros((3, 2)), [0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="more than the 3 items"):
        metrics.precision_at_k(np.zeros((2, 3)), [0, 1], [0, 1, 1], k=4)


def test_codebook_usage_perplexity_and_dead_share():
    uniform = metrics.codebook_usage(np.arange(8).repeat(3), 8)
    assert uniform["perplexity"] == pytest.approx(8.0)
    assert uniform["dead_share"] == 0.0
    single = metrics.codebook_usage(np.full((4, 7, 7), 2), 8)
    assert single["perplexity"] == pytest.approx(1.0)
    assert single["dead_share"] == pytest.approx(7 / 8)
    half = metrics.codebook_usage(np.array([0, 0, 0, 1]), 4)
    entropy = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert half["perplexity"] == pytest.approx(np.exp(entropy))
    np.testing.assert_array_equal(half["counts"], [3, 1, 0, 0])


def test_codebook_usage_errors():
    with pytest.raises(ValueError, match=r"lie in \[0, 3\]"):
        metrics.codebook_usage(np.array([0, 4]), 4)
    with pytest.raises(ValueError, match="integer codebook indices"):
        metrics.codebook_usage(np.array([0.5]), 4)
