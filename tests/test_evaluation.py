"""The judge classifier: trained once per mode through checkpoints.once, reloaded, trained again
when its entry is damaged, kept when its save fails; published models; the checks on images."""

import keras
import numpy as np
import pytest

from course_utils import checkpoints, data, evaluation, files, metrics

# The judge keeps its answers under the model folder: never in build/models from a test.
pytestmark = pytest.mark.usefixtures("model_dir")


def test_classifier_has_named_feature_layer_and_ten_classes():
    model = evaluation.build_fashion_classifier()
    assert model.get_layer("features").units == 128
    assert model.output_shape == (None, 10)


def test_judge_trains_once_through_checkpoints_then_reloads_and_retrains_a_damaged_entry(
    smoke_run, model_dir, monkeypatch, capsys
):
    judge = evaluation.load_fashion_classifier(smoke_run)
    folder = model_dir / "trained" / "judge"
    [saved] = sorted(path.name for path in folder.iterdir())  # exactly one file, no leftovers
    assert saved.startswith("fashion_classifier-smoke-") and saved.endswith(".npz")
    assert checkpoints.TRAINED_LINE in capsys.readouterr().out

    def no_training(*args, **kwargs):
        raise AssertionError("the saved judge should have been reloaded, not retrained")

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "fit", no_training)
        reloaded = evaluation.load_fashion_classifier(smoke_run)
    assert checkpoints.RELOADED_LINE in capsys.readouterr().out
    images = np.random.default_rng(0).random((5, 28, 28)).astype("float32")
    np.testing.assert_array_equal(reloaded.predict(images, verbose=0),
                                  judge.predict(images, verbose=0))

    (folder / saved).write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="did not load"):
        rebuilt = evaluation.load_fashion_classifier(smoke_run)
    np.testing.assert_array_equal(rebuilt.predict(images, verbose=0),
                                  judge.predict(images, verbose=0))  # the same training again
    assert sorted(path.name for path in folder.iterdir()) == [saved]


def test_a_judge_whose_save_fails_is_kept_not_thrown_away(smoke_run, model_dir, monkeypatch):
    def no_room(path, write):
        raise FileExistsError("a file stands in the way")

    monkeypatch.setattr(files, "write_atomically", no_room)
    with pytest.warns(UserWarning, match="could not save it"):
        judge = evaluation.load_fashion_classifier(smoke_run)
    images = data.load_fashion_mnist(limit=2000).X_valid[:200]
    labels = data.load_fashion_mnist(limit=2000).y_valid[:200]
    accuracy = np.mean(evaluation.classify_images(judge, images) == labels)
    assert accuracy > 0.5  # a trained judge (chance is 0.1), returned although nothing was saved


def test_the_judge_has_one_cache_the_checkpoints_one():
    import inspect

    source = inspect.getsource(evaluation)
    assert "checkpoints.once(" in source
    assert "load_model" not in inspect.getsource(evaluation.load_fashion_classifier)
    checkpoint_source = inspect.getsource(checkpoints)
    assert "from course_utils import evaluation" not in checkpoint_source
    assert "course_utils.evaluation" not in checkpoint_source


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


def test_classes_and_features_of_the_same_images_come_from_one_pass(monkeypatch):
    keras.utils.set_random_seed(0)
    judge = evaluation.build_fashion_classifier()
    images = np.random.default_rng(1).uniform(0, 1, (40, 28, 28)).astype("float32")
    calls = []
    real_predict = keras.Model.predict

    def counted_predict(model, *args, **kwargs):
        calls.append(model.name)
        return real_predict(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "predict", counted_predict)
    classes = evaluation.classify_images(judge, images)
    features = evaluation.judge_features(judge, images)
    assert len(calls) == 1  # the second answer came from the first pass
    np.testing.assert_array_equal(classes, np.argmax(judge(images), axis=-1))
    np.testing.assert_allclose(features, keras.Model(
        judge.inputs[0], judge.get_layer("features").output)(images), rtol=1e-5, atol=1e-6)
    features[:] = 0  # a caller's edit never reaches what is kept
    assert np.any(evaluation.judge_features(judge, images) != 0)
    assert len(calls) == 1
    evaluation.judge_features(judge, images[::-1].copy())  # other images: judged again
    assert len(calls) == 2
    before = evaluation.judge_features(judge, images)
    kernel = judge.get_layer("features").kernel
    kernel.assign(kernel.numpy() * 2)  # other weights: judged again, never the kept answer
    after = evaluation.judge_features(judge, images)
    assert len(calls) == 3
    assert not np.allclose(after, before)
    # A new session (memory cleared) reads the answers from disk: no pass at all.
    kept = sorted(path.name for path in evaluation.judged_dir().iterdir())
    assert len(kept) == 3 and all(name.endswith(".npz") for name in kept)
    evaluation._RECENT_JUDGEMENTS.clear()
    np.testing.assert_array_equal(evaluation.judge_features(judge, images), after)
    assert len(calls) == 3
    for path in evaluation.judged_dir().iterdir():  # a damaged file is judged again
        path.write_bytes(b"damaged")
    evaluation._RECENT_JUDGEMENTS.clear()
    np.testing.assert_allclose(evaluation.judge_features(judge, images), after, rtol=1e-6)
    assert len(calls) == 4


def test_a_published_model_reloads_in_another_notebook(smoke_run, model_dir):
    decoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)], name="decoder")
    path = evaluation.publish_model(decoder, "vae_decoder", smoke_run)
    assert path == model_dir / "published" / "vae_decoder-smoke.keras"
    assert sorted(path.parent.iterdir()) == [path]  # exactly the model: no temporary file left
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


def test_publishing_where_a_file_blocks_the_folder_says_what_to_move(smoke_run, model_dir):
    (model_dir / "published").write_text("a file where the folder goes")
    decoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    with pytest.raises(NotADirectoryError, match="is a file, not a folder.*Move or delete"):
        evaluation.publish_model(decoder, "vae_decoder", smoke_run)
    with pytest.raises(TypeError, match="saves a keras.Model"):
        evaluation.publish_model("decoder", "vae_decoder", smoke_run)
    assert sorted(path.name for path in model_dir.iterdir()) == ["published"]


class _UnsureClassifier:
    """Sure of class 7 for bright images, torn between 6 and 5 for dark ones."""

    def predict(self, images, batch_size=None, verbose=0):
        probabilities = np.zeros((len(images), 10))
        bright = np.asarray(images).reshape(len(images), -1).mean(axis=1) > 0.5
        probabilities[bright, 7] = 0.95
        probabilities[bright, 0] = 0.05
        probabilities[~bright, 6] = 0.55
        probabilities[~bright, 5] = 0.45
        return probabilities


def test_judge_coverage_counts_only_confident_verdicts():
    images = np.concatenate([np.ones((3, 28, 28)), np.zeros((1, 28, 28))])
    labels, confidences = evaluation.classify_with_confidence(_UnsureClassifier(), images)
    np.testing.assert_array_equal(labels, [7, 7, 7, 6])
    np.testing.assert_allclose(confidences, [0.95, 0.95, 0.95, 0.55])
    coverage = evaluation.judge_coverage(_UnsureClassifier(), images)
    assert evaluation.JUDGE_MIN_CONFIDENCE > 0.55
    assert coverage["counted"] == 3
    assert coverage["low_confidence_share"] == pytest.approx(0.25)
    assert coverage["classes_seen"] == 1
    everything = evaluation.judge_coverage(_UnsureClassifier(), images, min_confidence=0.0)
    assert everything["classes_seen"] == 2
    with pytest.raises(ValueError, match="rescale tanh"):
        evaluation.judge_coverage(_UnsureClassifier(), images * 2 - 1)


def test_classify_with_confidence_agrees_with_the_judges_probabilities():
    keras.utils.set_random_seed(0)
    judge = evaluation.build_fashion_classifier()
    images = np.random.default_rng(2).uniform(0, 1, (12, 28, 28)).astype("float32")
    labels, confidences = evaluation.classify_with_confidence(judge, images)
    probabilities = np.asarray(judge(images))
    np.testing.assert_array_equal(labels, probabilities.argmax(axis=-1))
    np.testing.assert_allclose(confidences, probabilities.max(axis=-1), rtol=1e-5)
    np.testing.assert_array_equal(labels, evaluation.classify_images(judge, images))
