"""The judge classifier: trained once per mode, cached atomically, reloaded in safe mode, rebuilt
when the cache is damaged; and the checks on the images it is given."""

import keras
import numpy as np
import pytest

from course_utils import config, evaluation, metrics


@pytest.fixture
def smoke_run():
    return config.RunSettings(mode="smoke", seed=42)


def test_classifier_has_named_feature_layer_and_ten_classes():
    model = evaluation.build_fashion_classifier()
    assert model.get_layer("features").units == 128
    assert model.output_shape == (None, 10)


def test_judge_trains_once_then_reloads_and_rebuilds_a_damaged_cache(
    smoke_run, model_dir, monkeypatch, capsys
):
    judge = evaluation.load_fashion_classifier(smoke_run)
    saved = list(model_dir.glob("*.keras"))
    assert [path.name.startswith("fashion_classifier-smoke-") for path in saved] == [True]
    assert "Training the judge" in capsys.readouterr().out
    assert not list(model_dir.glob(".tmp-*"))  # nothing left behind by the atomic save

    def no_training(*args, **kwargs):
        raise AssertionError("the cached judge should have been reloaded, not retrained")

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "fit", no_training)
        reloaded = evaluation.load_fashion_classifier(smoke_run)
    images = np.random.default_rng(0).random((5, 28, 28)).astype("float32")
    np.testing.assert_allclose(reloaded.predict(images, verbose=0),
                               judge.predict(images, verbose=0), atol=1e-6)

    saved[0].write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="did not load"):
        rebuilt = evaluation.load_fashion_classifier(smoke_run)
    assert rebuilt.output_shape == (None, 10)
    assert saved[0].stat().st_size > 1000


def test_cache_key_changes_with_architecture_and_settings():
    model = evaluation.build_fashion_classifier()
    key = evaluation._settings_key(model, {"epochs": 1})
    assert key == evaluation._settings_key(evaluation.build_fashion_classifier(), {"epochs": 1})
    assert key != evaluation._settings_key(model, {"epochs": 2})
    other = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    assert key != evaluation._settings_key(other, {"epochs": 1})


def test_an_interrupted_save_leaves_no_file(model_dir, monkeypatch):
    model = evaluation.build_fashion_classifier()

    def interrupted(self, path, *args, **kwargs):
        with open(path, "wb") as half_written:
            half_written.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluation._save_atomically(model, model_dir / "judge.keras")
    assert list(model_dir.iterdir()) == []


class _FixedClassifier:
    def predict(self, images, batch_size=None, verbose=0):
        probabilities = np.zeros((len(images), 10))
        probabilities[:, 7] = 1.0
        return probabilities


def test_classify_images_accepts_channel_axis_and_returns_argmax():
    labels = evaluation.classify_images(_FixedClassifier(), np.zeros((3, 28, 28, 1)))
    np.testing.assert_array_equal(labels, [7, 7, 7])


@pytest.mark.parametrize(
    ("images", "message"),
    [(np.zeros((2, 32, 32)), "28x28"), (np.full((2, 28, 28), -1.0), r"rescale tanh"),
     (np.full((2, 28, 28), 255.0), r"\[0, 1\]")],
)
def test_classify_images_rejects_wrong_shapes_and_ranges(images, message):
    with pytest.raises(ValueError, match=message):
        evaluation.classify_images(_FixedClassifier(), images)


def test_judge_features_come_from_the_128_unit_layer_and_feed_the_fid():
    keras.utils.set_random_seed(0)
    judge = evaluation.build_fashion_classifier()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (64, 28, 28)).astype("float32")
    features = evaluation.judge_features(judge, images[..., None])
    assert features.shape == (64, 128)
    expected = keras.Model(judge.inputs[0], judge.get_layer("features").output)(images)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    assert evaluation.domain_fid(judge, images, images) == pytest.approx(0.0, abs=1e-6)
    darker = evaluation.domain_fid(judge, images, images * 0.2)
    assert darker > 0
    assert darker == pytest.approx(
        metrics.frechet_distance(features, evaluation.judge_features(judge, images * 0.2)))
    with pytest.raises(ValueError, match="rescale tanh"):
        evaluation.domain_fid(judge, images, images * 2 - 1)
    fid_to_images = evaluation.domain_fid_against(judge, images)
    assert fid_to_images(images * 0.2) == pytest.approx(darker)
    assert fid_to_images(images) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="rescale tanh"):
        fid_to_images(images * 2 - 1)


def test_a_published_model_reloads_in_another_notebook(smoke_run, model_dir):
    decoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)], name="decoder")
    path = evaluation.publish_model(decoder, "vae_decoder", smoke_run)
    assert path == model_dir / "published" / "vae_decoder-smoke.keras"
    assert not list(path.parent.glob(".tmp-*"))
    reloaded = evaluation.load_published_model("vae_decoder", smoke_run)
    codings = np.ones((2, 3), "float32")
    np.testing.assert_allclose(reloaded(codings), decoder(codings), rtol=1e-6)


def test_a_missing_or_damaged_published_model_says_which_notebook_to_run(smoke_run, model_dir):
    with pytest.raises(FileNotFoundError, match=r"run notebooks/09_generative_adversarial_net"):
        evaluation.load_published_model("gan_generator", smoke_run)
    path = evaluation.published_path("dcgan_generator", smoke_run)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"damaged.*10_deep_convolutional_gan"):
        evaluation.load_published_model("dcgan_generator", smoke_run)
    with pytest.raises(ValueError, match="Unknown published model"):
        evaluation.published_path("stylegan", smoke_run)
