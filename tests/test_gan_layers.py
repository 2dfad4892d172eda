"""The GAN chapters' layers: minibatch discrimination (notebook 9) and ProGAN's / StyleGAN's
layers (notebook 11) against their formulas, shapes, errors and safe-mode reloads."""

import keras
import numpy as np
import pytest

from course_utils import gan_layers


def _feature_maps(seed=0, shape=(6, 4, 4, 3)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_minibatch_std_appends_the_mean_batch_std_as_a_channel():
    maps = _feature_maps()
    result = np.asarray(gan_layers.MinibatchStdDev()(maps))
    assert result.shape == (6, 4, 4, 4)
    np.testing.assert_array_equal(result[..., :3], maps)
    expected = np.mean(np.sqrt(maps.var(axis=0) + 1e-8) - np.sqrt(1e-8))
    np.testing.assert_allclose(result[..., 3], expected, rtol=1e-5)


def test_minibatch_std_of_identical_images_is_exactly_zero():
    same = np.repeat(_feature_maps(shape=(1, 4, 4, 3)), 8, axis=0)
    extra = np.asarray(gan_layers.MinibatchStdDev()(same))[..., -1]
    assert np.all(extra == 0.0)


def test_minibatch_std_grows_with_the_spread_of_the_batch():
    layer = gan_layers.MinibatchStdDev()
    maps = _feature_maps()
    narrow = float(np.asarray(layer(maps))[0, 0, 0, -1])
    wide = float(np.asarray(layer(3 * maps))[0, 0, 0, -1])
    assert wide == pytest.approx(3 * narrow, rel=1e-4)


def test_minibatch_std_gradient_is_finite_for_a_collapsed_batch():
    import tensorflow as tf

    same = tf.constant(np.ones((4, 2, 2, 2), dtype="float32"))
    with tf.GradientTape() as tape:
        tape.watch(same)
        total = tf.reduce_sum(gan_layers.MinibatchStdDev()(same))
    assert np.all(np.isfinite(tape.gradient(total, same).numpy()))


def test_minibatch_std_errors():
    with pytest.raises(ValueError, match="height, width, channels"):
        gan_layers.MinibatchStdDev()(np.zeros((4, 10), dtype="float32"))
    with pytest.raises(ValueError, match="epsilon must be positive"):
        gan_layers.MinibatchStdDev(epsilon=0)


def test_pixel_norm_matches_the_formula_and_gives_unit_rms():
    maps = _feature_maps(1)
    result = np.asarray(gan_layers.PixelNormalization()(maps))
    expected = maps / np.sqrt(np.mean(maps**2, axis=-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(result, expected, rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.mean(result**2, axis=-1)), 1.0, rtol=1e-4)


def test_pixel_norm_ignores_scale_and_keeps_zero_vectors_at_zero():
    layer = gan_layers.PixelNormalization()
    maps = _feature_maps(2)
    np.testing.assert_allclose(layer(maps), layer(5 * maps), rtol=1e-4)
    zeros = np.zeros((1, 2, 2, 3), dtype="float32")
    np.testing.assert_array_equal(layer(zeros), zeros)
    with pytest.raises(ValueError, match="epsilon must be positive"):
        gan_layers.PixelNormalization(epsilon=-1)


def test_progan_layers_reload_in_safe_mode(tmp_path):
    inputs = keras.Input((4, 4, 3))
    normalized = gan_layers.PixelNormalization(epsilon=1e-6)(inputs)
    outputs = gan_layers.MinibatchStdDev(epsilon=1e-6)(normalized)
    model = keras.Model(inputs, outputs)
    assert model.output_shape == (None, 4, 4, 4)
    path = tmp_path / "progan.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    maps = _feature_maps(3)
    np.testing.assert_allclose(reloaded(maps), model(maps), rtol=1e-6)
    assert reloaded.layers[1].epsilon == reloaded.layers[2].epsilon == 1e-6


def test_equalized_dense_scales_its_n01_weights_by_the_he_constant():
    layer = gan_layers.EqualizedDense(4, lr_multiplier=0.01)
    inputs = _feature_maps(4, shape=(5, 16))
    outputs = np.asarray(layer(inputs))
    kernel, bias = (np.asarray(weight) for weight in layer.weights)
    expected = inputs @ (kernel * np.sqrt(2 / 16) * 0.01) + bias * 0.01
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-7)
    # Stored weights are N(0, 1/lr²): their spread is 1/lr, the effective spread is sqrt(2/fan_in).
    big = gan_layers.EqualizedDense(2000, lr_multiplier=0.01)
    big.build((None, 50))
    assert np.std(np.asarray(big.kernel)) == pytest.approx(100, rel=0.02)
    assert big.scale * 100 == pytest.approx(np.sqrt(2 / 50))


def test_equalized_conv_matches_a_plain_conv_with_scaled_weights():
    layer = gan_layers.EqualizedConv2D(5, kernel_size=3, strides=2, activation="relu")
    maps = _feature_maps(5, shape=(2, 8, 8, 3))
    outputs = np.asarray(layer(maps))
    assert outputs.shape == layer.compute_output_shape((2, 8, 8, 3)) == (2, 4, 4, 5)
    plain = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu")
    plain.build((None, 8, 8, 3))
    plain.set_weights([np.asarray(layer.kernel) * np.sqrt(2 / 27), np.asarray(layer.bias)])
    np.testing.assert_allclose(outputs, plain(maps), rtol=1e-4, atol=1e-6)


def test_equalized_layers_errors_and_reload(tmp_path):
    with pytest.raises(ValueError, match="lr_multiplier must be positive"):
        gan_layers.EqualizedDense(3, lr_multiplier=0)
    with pytest.raises(ValueError, match="units"):
        gan_layers.EqualizedDense(0)
    with pytest.raises(ValueError, match="padding"):
        gan_layers.EqualizedConv2D(3, padding="full")
    with pytest.raises(ValueError, match="height, width, channels"):
        gan_layers.EqualizedConv2D(3)(np.zeros((2, 5), dtype="float32"))
    inputs = keras.Input((6, 6, 2))
    hidden = gan_layers.EqualizedConv2D(4, 3, padding="valid", activation="leaky_relu")(inputs)
    outputs = gan_layers.EqualizedDense(3, lr_multiplier=0.5)(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "equalized.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    maps = _feature_maps(6, shape=(2, 6, 6, 2))
    np.testing.assert_allclose(reloaded(maps), model(maps), rtol=1e-5)


def test_noise_injection_starts_silent_then_adds_one_noise_map_per_image():
    layer = gan_layers.NoiseInjection(seed=1)
    maps = _feature_maps(7, shape=(64, 8, 8, 3))
    np.testing.assert_array_equal(layer(maps), maps)  # scales start at 0
    layer.noise_scale.assign([1.0, 2.0, -1.0])
    added = np.asarray(layer(maps)) - maps
    np.testing.assert_allclose(added[..., 1], 2 * added[..., 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(added[..., 2], -added[..., 0], rtol=1e-5, atol=1e-6)
    assert abs(added[..., 0].mean()) < 0.05 and added[..., 0].std() == pytest.approx(1, rel=0.05)
    again = np.asarray(layer(maps)) - maps
    assert not np.allclose(again, added)  # fresh noise at every call


def test_noise_injection_repeats_for_a_seed_and_reloads(tmp_path):
    maps = _feature_maps(8, shape=(2, 4, 4, 2))
    first, second = gan_layers.NoiseInjection(seed=5), gan_layers.NoiseInjection(seed=5)
    for layer in (first, second):
        layer.build(maps.shape)
        layer.noise_scale.assign([1.0, 1.0])
    np.testing.assert_allclose(first(maps), second(maps))
    with pytest.raises(ValueError, match="height, width, channels"):
        gan_layers.NoiseInjection()(np.zeros((3, 4), dtype="float32"))
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, gan_layers.NoiseInjection(seed=3)(inputs))
    model.save(tmp_path / "noise.keras")
    reloaded = keras.saving.load_model(tmp_path / "noise.keras", safe_mode=True)
    assert reloaded.layers[1].seed == 3


def test_adain_normalises_each_map_then_applies_the_style():
    layer = gan_layers.AdaptiveInstanceNormalization()
    maps = 3 + 2 * _feature_maps(9, shape=(2, 5, 5, 3))
    w = _feature_maps(10, shape=(2, 4))
    layer.build([maps.shape, w.shape])
    layer.style_kernel.assign(np.zeros((4, 6), dtype="float32"))
    plain = np.asarray(layer([maps, w]))  # style scale 1, bias 0: pure instance normalisation
    np.testing.assert_allclose(plain.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(plain.std(axis=(1, 2)), 1, rtol=1e-3)

    kernel = np.random.default_rng(11).normal(size=(4, 6)).astype("float32")
    layer.style_kernel.assign(kernel)
    style = w @ kernel + np.array([1, 1, 1, 0, 0, 0], dtype="float32")
    mean = maps.mean(axis=(1, 2), keepdims=True)
    normalised = (maps - mean) / np.sqrt(maps.var(axis=(1, 2), keepdims=True) + 1e-5)
    expected = style[:, None, None, :3] * normalised + style[:, None, None, 3:]
    np.testing.assert_allclose(layer([maps, w]), expected, rtol=1e-4, atol=1e-5)


def test_adain_errors_and_reload(tmp_path):
    with pytest.raises(ValueError, match=r"\[feature_maps, w\]"):
        gan_layers.AdaptiveInstanceNormalization()(np.zeros((2, 4, 4, 3), dtype="float32"))
    maps_in, w_in = keras.Input((4, 4, 3)), keras.Input((5,))
    styled = gan_layers.AdaptiveInstanceNormalization()([maps_in, w_in])
    model = keras.Model([maps_in, w_in], styled)
    assert model.output_shape == (None, 4, 4, 3)
    model.save(tmp_path / "adain.keras")
    reloaded = keras.saving.load_model(tmp_path / "adain.keras", safe_mode=True)
    maps, w = _feature_maps(12, shape=(2, 4, 4, 3)), _feature_maps(13, shape=(2, 5))
    np.testing.assert_allclose(reloaded([maps, w]), model([maps, w]), rtol=1e-5)


def test_fade_in_blends_old_and_new_paths():
    old, new = _feature_maps(14, shape=(2, 4, 4, 1)), _feature_maps(15, shape=(2, 4, 4, 1))
    layer = gan_layers.FadeIn()
    np.testing.assert_allclose(layer([old, new]), old)
    layer.set_alpha(0.25)
    np.testing.assert_allclose(layer([old, new]), 0.75 * old + 0.25 * new, rtol=1e-6)
    layer.set_alpha(1.0)
    np.testing.assert_allclose(layer([old, new]), new)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        layer.set_alpha(1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gan_layers.FadeIn(alpha=-0.1)
    with pytest.raises(ValueError, match="same shape"):
        gan_layers.FadeIn()([old, _feature_maps(16, shape=(2, 8, 8, 1))])


def test_fade_in_alpha_changes_inside_a_compiled_function_and_reloads(tmp_path):
    import tensorflow as tf

    layer = gan_layers.FadeIn()
    old, new = np.zeros((1, 2, 2, 1), "float32"), np.ones((1, 2, 2, 1), "float32")
    blend = tf.function(lambda: layer([old, new]))
    assert float(np.asarray(blend()).mean()) == 0.0
    layer.set_alpha(0.5)
    assert float(np.asarray(blend()).mean()) == 0.5  # no retrace needed
    old_in, new_in = keras.Input((2, 2, 1)), keras.Input((2, 2, 1))
    model = keras.Model([old_in, new_in], gan_layers.FadeIn(alpha=0.3)([old_in, new_in]))
    model.save(tmp_path / "fade.keras")
    reloaded = keras.saving.load_model(tmp_path / "fade.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded([old, new]), 0.3, rtol=1e-6)


def test_mapping_network_has_eight_slow_equalised_layers_and_ignores_z_scale(tmp_path):
    mapping = gan_layers.build_mapping_network(codings_size=16, w_dim=12)
    dense = [layer for layer in mapping.layers if isinstance(layer, gan_layers.EqualizedDense)]
    assert len(dense) == 8 and all(layer.lr_multiplier == 0.01 for layer in dense)
    assert mapping.output_shape == (None, 12)
    assert mapping.count_params() == 16 * 12 + 12 + 7 * (12 * 12 + 12)
    z = _feature_maps(17, shape=(3, 16))
    np.testing.assert_allclose(mapping(z), mapping(4 * z), rtol=1e-4, atol=1e-6)
    mapping.save(tmp_path / "mapping.keras")
    reloaded = keras.saving.load_model(tmp_path / "mapping.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded(z), mapping(z), rtol=1e-5)


def _leaky(x):
    return np.where(x > 0, x, 0.2 * x)


def _adain(layer, maps, w):
    kernel, bias = np.asarray(layer.style_kernel), np.asarray(layer.style_bias)
    style = w @ kernel + bias
    channels = maps.shape[-1]
    normalised = (maps - maps.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
        maps.var(axis=(1, 2), keepdims=True) + 1e-5)
    return style[:, None, None, :channels] * normalised + style[:, None, None, channels:]


def _randomise(block, seed):
    rng = np.random.default_rng(seed)
    for weight in block.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))


def test_synthesis_block_from_the_constant_follows_the_stylegan_recipe():
    block = gan_layers.SynthesisBlock(3, start_from_constant=True)
    w = _feature_maps(18, shape=(2, 5))
    assert np.asarray(block(w)).shape == (2, 4, 4, 3)
    assert np.all(np.asarray(block.constant) == 1.0)  # StyleGAN starts from ones
    _randomise(block, 19)
    for noise in block.noises:
        noise.noise_scale.assign(np.zeros(3, "float32"))  # silent noise: a deterministic block
    constant = np.broadcast_to(np.asarray(block.constant), (2, 4, 4, 3))
    maps = _adain(block.adains[0], _leaky(constant), w)
    conv = block.second_conv
    maps = np.asarray(conv(maps))  # EqualizedConv2D is checked against its formula above
    expected = _adain(block.adains[1], _leaky(maps), w)
    np.testing.assert_allclose(block(w), expected, rtol=1e-4, atol=1e-4)


def test_synthesis_block_upsamples_then_styles_and_same_w_gives_same_image():
    block = gan_layers.SynthesisBlock(2)
    maps, w = _feature_maps(20, shape=(1, 4, 4, 3)), _feature_maps(21, shape=(1, 6))
    assert np.asarray(block([maps, w])).shape == (1, 8, 8, 2)
    _randomise(block, 22)
    for noise in block.noises:
        noise.noise_scale.assign(np.zeros(2, "float32"))
    upsampled = maps.repeat(2, axis=1).repeat(2, axis=2)
    first = np.asarray(block.first_conv(upsampled))
    first = _adain(block.adains[0], _leaky(first), w)
    expected = _adain(block.adains[1], _leaky(np.asarray(block.second_conv(first))), w)
    np.testing.assert_allclose(block([maps, w]), expected, rtol=1e-4, atol=1e-4)

    start = gan_layers.SynthesisBlock(4, start_from_constant=True)
    same = np.repeat(_feature_maps(23, shape=(1, 6)), 3, axis=0)
    out = np.asarray(start(same))
    np.testing.assert_array_equal(out[0], out[1])  # noise starts silent: only w matters
    for noise in start.noises:
        noise.noise_scale.assign(np.ones(4, "float32"))
    out = np.asarray(start(same))
    assert not np.allclose(out[0], out[1])  # once it is heard, noise varies the details


def test_synthesis_block_errors_and_reload(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        gan_layers.SynthesisBlock(0)
    with pytest.raises(ValueError, match=r"\[feature_maps, w\]"):
        gan_layers.SynthesisBlock(2)(_feature_maps(shape=(2, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"\(batch, w_dim\)"):
        gan_layers.SynthesisBlock(2, start_from_constant=True)(_feature_maps(shape=(2, 4, 4, 3)))
    w_in = keras.Input((6,))
    maps = gan_layers.SynthesisBlock(4, start_from_constant=True, seed=1)(w_in)
    model = keras.Model(w_in, gan_layers.SynthesisBlock(2, seed=3)([maps, w_in]))
    assert model.output_shape == (None, 8, 8, 2)
    for block in model.layers[1:]:
        _randomise(block, 24)
    model.save(tmp_path / "synthesis.keras")
    reloaded = keras.saving.load_model(tmp_path / "synthesis.keras", safe_mode=True)
    for saved, loaded in zip(model.weights, reloaded.weights, strict=True):
        np.testing.assert_array_equal(saved, loaded)
    assert [block.seed for block in reloaded.layers[1:]] == [1, 3]


# --- Minibatch discrimination (notebook 9) ---


def _minibatch_features_by_hand(features, kernel, num_kernels, kernel_dim):
    rows = (features @ kernel).reshape(len(features), num_kernels, kernel_dim)
    closeness = np.zeros((len(features), num_kernels))
    for i in range(len(features)):
        for j in range(len(features)):
            if i != j:
                closeness[i] += np.exp(-np.abs(rows[i] - rows[j]).sum(axis=-1))
    return np.concatenate([features, closeness], axis=1)


def test_minibatch_discrimination_matches_the_formula():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(6, 4)).astype("float32")
    layer = gan_layers.MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
    output = np.asarray(layer(features))
    expected = _minibatch_features_by_hand(features, np.asarray(layer.kernel), 3, 2)
    assert output.shape == (6, 7)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)


def test_minibatch_discrimination_sees_a_collapsed_batch():
    layer = gan_layers.MinibatchDiscrimination(num_kernels=2, kernel_dim=2)
    identical = np.ones((5, 3), dtype="float32")
    varied = np.random.default_rng(2).normal(size=(5, 3)).astype("float32") * 5
    # Identical examples are at distance 0 from the 4 others: closeness exactly 4 per kernel.
    np.testing.assert_allclose(np.asarray(layer(identical))[:, 3:], 4.0, atol=1e-6)
    assert np.asarray(layer(varied))[:, 3:].mean() < 4.0


def test_minibatch_discrimination_errors_and_reload(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        gan_layers.MinibatchDiscrimination(num_kernels=0)
    with pytest.raises(ValueError, match="flat feature vectors"):
        gan_layers.MinibatchDiscrimination()(np.zeros((2, 3, 3), "float32"))
    model = keras.Sequential([keras.Input((4,)), gan_layers.MinibatchDiscrimination(5, 3),
                              keras.layers.Dense(1)])
    assert model.layers[0].kernel.shape == (4, 15)
    model.save(tmp_path / "discriminator.keras")
    reloaded = keras.models.load_model(tmp_path / "discriminator.keras", safe_mode=True)
    x = np.random.default_rng(3).random((8, 4)).astype("float32")
    np.testing.assert_allclose(model(x), reloaded(x), atol=1e-6)
    assert reloaded.layers[0].get_config()["num_kernels"] == 5

