"""Plot helpers: what they draw, and the errors they give for input they cannot draw."""

from types import SimpleNamespace

import keras
import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import pytest

from course_utils import plots


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_learning_curves_draw_training_validation_and_reference():
    curves = {"loss": [3, 2, 1], "val_loss": [4, 3, 2], "acc": [0.1, 0.2, 0.3]}
    history = SimpleNamespace(history=curves)
    fig = plots.plot_learning_curves(history, metrics=("loss", "acc"), reference={"PCA": 0.5})
    loss_ax, acc_ax = fig.axes
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels == ["training loss", "validation loss", "PCA"]
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(loss_ax.get_lines()[1].get_ydata(), [4, 3, 2])
    assert [line.get_label() for line in acc_ax.get_lines()] == ["training acc", "PCA"]


def test_learning_curves_accept_a_plain_dict_and_log_scale():
    fig = plots.plot_learning_curves({"loss": [1.0, 0.1]}, log_y=True)
    assert fig.axes[0].get_yscale() == "log"


def test_learning_curves_explain_bad_input():
    with pytest.raises(KeyError, match="it has"):
        plots.plot_learning_curves({"loss": [1.0]}, metrics=("accuracy",))
    with pytest.raises(TypeError, match="History"):
        plots.plot_learning_curves([1.0, 2.0])


def test_image_grid_shows_each_image_once_with_titles():
    images = np.random.default_rng(0).random((7, 28, 28, 1))
    fig = plots.plot_image_grid(images, n_cols=4, titles=list("abcdefg"), value_range=(-1, 1))
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert len(fig.axes) == 8 and len(shown) == 7
    assert [ax.get_title() for ax in shown] == list("abcdefg")
    np.testing.assert_array_equal(shown[2].get_images()[0].get_array(), images[2, ..., 0])
    assert shown[0].get_images()[0].get_clim() == (-1, 1)


def test_image_grid_rejects_colour_or_flat_images():
    with pytest.raises(ValueError, match="grey images"):
        plots.plot_image_grid(np.zeros((2, 28, 28, 3)))
    with pytest.raises(ValueError, match="grey images"):
        plots.plot_image_grid(np.zeros((2, 784)))


def test_reconstructions_put_originals_above_reconstructions():
    originals = np.zeros((10, 28, 28))
    reconstructions = np.ones((10, 28, 28))
    fig = plots.plot_reconstructions(originals, reconstructions, n_images=5)
    assert len(fig.axes) == 10
    assert fig.axes[0].get_ylabel() == "original" and fig.axes[5].get_ylabel() == "reconstruction"
    assert fig.axes[0].get_images()[0].get_array().max() == 0
    assert fig.axes[9].get_images()[0].get_array().min() == 1


def test_reconstructions_need_matching_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        plots.plot_reconstructions(np.zeros((4, 28, 28)), np.zeros((4, 14, 14)))


def test_3d_scatter_holds_the_points_and_the_plane_through_them():
    rng = np.random.default_rng(0)
    basis = np.array([[1.0, 0], [0, 1], [0.5, -0.2]])
    points = rng.normal(size=(50, 2)) @ basis.T + np.array([1.0, 2, 3])
    fig = plots.plot_3d_scatter(points, plane=(np.array([1.0, 2, 3]), basis))
    assert isinstance(fig, go.Figure)
    cloud, surface = fig.data
    np.testing.assert_allclose(cloud.x, points[:, 0])
    np.testing.assert_allclose(cloud.z, points[:, 2])
    # Every vertex of the drawn patch satisfies the plane's equation z = 3 + 0.5(x-1) - 0.2(y-2).
    x, y, z = (np.asarray(v) for v in (surface.x, surface.y, surface.z))
    np.testing.assert_allclose(z, 3 + 0.5 * (x - 1) - 0.2 * (y - 2), atol=1e-9)


def test_3d_scatter_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        plots.plot_3d_scatter(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"\(3, 2\) basis"):
        plots.plot_3d_scatter(np.zeros((5, 3)), plane=(np.zeros(3), np.zeros((3, 3))))


def test_embedding_legend_uses_class_names():
    points = np.arange(12, dtype=float).reshape(6, 2)
    labels = np.array([0, 2, 2, 0, 9, 9])
    names = [f"class {i}" for i in range(10)]
    fig = plots.plot_embedding_2d(points, labels, class_names=names, title="t")
    legend = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert legend == ["class 0", "class 2", "class 9"]
    assert fig.axes[0].get_title() == "t"


def test_embedding_without_labels_and_its_errors():
    fig = plots.plot_embedding_2d(np.zeros((4, 2)))
    assert fig.axes[0].get_legend() is None
    with pytest.raises(ValueError, match="one label per point"):
        plots.plot_embedding_2d(np.zeros((4, 2)), labels=[0, 1])
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        plots.plot_embedding_2d(np.zeros((4, 3)))


def test_autoencoder_diagram_draws_one_bar_per_layer():
    fig = plots.plot_autoencoder_diagram((784, 100, 30, 100, 784))
    bars = [patch for patch in fig.axes[0].patches if isinstance(patch, plt.Rectangle)]
    assert len(bars) == 5
    heights = [bar.get_height() for bar in bars]
    assert heights[2] == min(heights) and heights[0] == max(heights) == heights[4]
    texts = {text.get_text() for text in fig.axes[0].texts}
    assert {"784", "100", "30", "encoder E", "decoder D"} <= texts


def test_autoencoder_diagram_names_what_goes_in_and_out_and_its_scale():
    default = {text.get_text() for text in plots.plot_autoencoder_diagram().axes[0].texts}
    assert {"input x", "codings s = E(x)", "reconstruction x̂"} <= default
    assert any("log scale" in text for text in default)
    fig = plots.plot_autoencoder_diagram(
        (100, 30, 100), labels=("codings h", "codings s = E(h)", "reconstruction ĥ"))
    texts = {text.get_text() for text in fig.axes[0].texts}
    assert {"codings h", "codings s = E(h)", "reconstruction ĥ"} <= texts
    assert "input x" not in texts


def test_autoencoder_diagram_rejects_too_few_layers():
    with pytest.raises(ValueError, match="at least"):
        plots.plot_autoencoder_diagram((784, 30))


def test_learning_curves_label_whole_epochs_only():
    fig = plots.plot_learning_curves({"loss": [3.0, 2.0, 1.5]})
    fig.canvas.draw()
    ticks = [tick for tick in fig.axes[0].get_xticks() if 1 <= tick <= 3]
    assert ticks and all(float(tick).is_integer() for tick in ticks)


def test_live_image_grid_displays_once_then_updates_in_place(monkeypatch):
    import IPython.display

    calls = []

    class FakeHandle:
        def update(self, fig):
            calls.append(("update", fig.texts[0].get_text()))

    def fake_display(fig, display_id=False):
        calls.append(("display", fig.texts[0].get_text()))
        assert display_id is True
        return FakeHandle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    show = plots.live_image_grid(n_images=4, n_cols=2, title="after {epoch}")
    images = np.random.default_rng(0).random((6, 28, 28))
    show(images, 1)
    show(images, 2)
    assert calls == [("display", "after 1"), ("update", "after 2")]
    assert plt.get_fignums() == []  # each grid is closed once shown


def test_class_shares_heatmap_labels_every_cell_and_checks_shapes():
    shares = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    fig = plots.plot_class_shares(shares, ["real", "fake"], ["a", "b", "c"], title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["50%", "50%", "0%", "20%", "30%", "50%"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["real", "fake"]
    with pytest.raises(ValueError, match="rows, classes"):
        plots.plot_class_shares(shares, ["only one row"], ["a", "b", "c"])


def test_image_rows_label_each_row_and_need_rows():
    rows = {"4x4": np.zeros((3, 4, 4)), "8x8": np.ones((2, 8, 8))}
    fig = plots.plot_image_rows(rows, title="growth")
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["4x4", "8x8"]
    assert [len(ax.images) for ax in axes.flat] == [1, 1, 1, 1, 1, 0]
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_image_rows({})


def test_style_mixing_table_puts_sources_on_the_edges():
    rows, columns = np.full((2, 4, 4), -1.0), np.full((3, 4, 4), 1.0)
    mixed = np.zeros((2, 3, 4, 4))
    mixed[1, 2] = 0.5
    fig = plots.plot_style_mixing(rows, columns, mixed)
    axes = np.array(fig.axes).reshape(3, 4)
    assert len(axes[0, 0].images) == 0
    assert axes[0, 3].images[0].get_array().mean() == 1.0  # a column source
    assert axes[2, 0].images[0].get_array().mean() == -1.0  # a row source
    assert axes[2, 3].images[0].get_array().mean() == 0.5  # mixed[1, 2]
    plt.close(fig)
    with pytest.raises(ValueError, match="rows, columns"):
        plots.plot_style_mixing(rows, columns, np.zeros((3, 2, 4, 4)))


def _feed(recorder, per_step, every=1, epochs=1):
    """Hand the recorder fit's running means, as Keras does once per call of `every` steps."""
    recorder.on_train_begin()
    for epoch in range(epochs):
        recorder.on_epoch_begin(epoch)
        values = np.asarray(per_step[epoch], dtype=float)
        for done in [*range(every, len(values) + 1, every), len(values)]:
            recorder.on_train_batch_end(done - 1, {"d_loss": values[:done].mean(),
                                                   "g_loss": 2 * values[:done].mean()})
        recorder.on_epoch_end(epoch)


def test_step_losses_recover_each_step_from_running_means():
    per_step = [[0.9, 0.5, 0.7, 0.6, 0.8], [0.4, 1.0, 0.3]]
    recorder = plots.StepLosses()
    _feed(recorder, per_step, epochs=2)
    np.testing.assert_allclose(recorder.losses["d_loss"], [*per_step[0], *per_step[1]])
    np.testing.assert_allclose(recorder.losses["g_loss"], 2 * np.array(sum(per_step, [])))
    assert recorder.steps == [1, 2, 3, 4, 5, 6, 7, 8]
    assert recorder.epoch_ends == [5, 8]


def test_step_losses_average_the_steps_of_one_call():
    # steps_per_execution=2 over 5 steps: calls after steps 2, 4 and 5.
    recorder = plots.StepLosses()
    _feed(recorder, [[0.9, 0.5, 0.7, 0.6, 0.8]], every=2)
    np.testing.assert_allclose(recorder.losses["d_loss"], [0.7, 0.65, 0.8])
    assert recorder.steps == [2, 4, 5]


def _fit_recording_steps(steps_per_execution, n_examples):
    """A tiny model fitted for 2 epochs of 4-example batches with a StepLosses recorder."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd", steps_per_execution=steps_per_execution)
    X = np.random.default_rng(0).random((n_examples, 3)).astype("float32")
    recorder = plots.StepLosses(names=("loss",))
    history = model.fit(X, X[:, :1], batch_size=4, epochs=2, verbose=0, callbacks=[recorder])
    return recorder, history


def test_step_losses_match_keras_fit_and_survive_a_save():
    recorder, history = _fit_recording_steps(2, 40)
    assert recorder.steps == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    # Each point is the mean of 2 steps, so the epoch's points average to fit's epoch loss.
    np.testing.assert_allclose(np.mean(recorder.losses["loss"][:5]), history.history["loss"][0],
                               rtol=1e-5)
    copy = plots.StepLosses(names=("loss",))
    copy.restore_arrays(recorder.saved_arrays())
    assert copy.steps == recorder.steps and copy.epoch_ends == [10, 20]
    np.testing.assert_allclose(copy.losses["loss"], recorder.losses["loss"])


def test_step_losses_count_a_short_last_call_by_its_real_steps():
    # 9 steps per epoch, 4 per call: Keras reports batch 3, 7 and 11, but the last call ran 1.
    recorder, history = _fit_recording_steps(4, 36)
    assert recorder.steps == [4, 8, 9, 13, 17, 18] and recorder.epoch_ends == [9, 18]
    weights = np.array([4, 4, 1])
    np.testing.assert_allclose(np.dot(recorder.losses["loss"][3:], weights) / 9,
                               history.history["loss"][1], rtol=1e-5)


def test_step_losses_explain_bad_input():
    with pytest.raises(TypeError, match="names must be a list"):
        plots.StepLosses(names="d_loss")
    recorder = plots.StepLosses()
    recorder.on_train_begin()
    recorder.on_epoch_begin(0)
    with pytest.raises(KeyError, match="StepLosses\\(names=...\\)"):
        recorder.on_train_batch_end(0, {"loss": 0.5})
    with pytest.raises(ValueError, match="lack"):
        recorder.restore_arrays({"steps": np.arange(3)})


def test_gan_losses_plot_draws_every_step_the_running_mean_and_the_reference():
    rng = np.random.default_rng(0)
    losses = {"steps": np.arange(1, 201), "epoch_ends": [100, 200],
              "d_loss": 0.69 + 0.1 * rng.standard_normal(200),
              "g_loss": 0.69 + 0.2 * rng.standard_normal(200)}
    fig = plots.plot_gan_losses(losses, reference={"ln 2": np.log(2)}, title="tug", window=10)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "d_loss, each step" in labels and "g_loss, mean of the last 10" in labels
    reference = ax.get_lines()[labels.index("ln 2")]
    np.testing.assert_allclose(reference.get_ydata(), [np.log(2)] * 2)
    smooth = ax.get_lines()[labels.index("d_loss, mean of the last 10")]
    np.testing.assert_allclose(smooth.get_ydata()[0], losses["d_loss"][:10].mean())
    assert ax.get_title() == "tug"
    assert any(line.get_xdata()[0] == 100 for line in ax.get_lines())  # the epoch boundary
    assert not ax.texts  # nothing off the scale


def test_gan_losses_plot_keeps_a_first_spike_from_flattening_the_rest():
    losses = {"steps": np.arange(1, 401), "d_loss": np.r_[5.0, np.full(399, 0.5)],
              "g_loss": np.full(400, 1.3)}
    fig = plots.plot_gan_losses(losses, reference={"ln 2": np.log(2)})
    ax = fig.axes[0]
    assert ax.get_ylim()[1] < 2 and "up to 5.00" in ax.texts[0].get_text()


def test_gan_losses_plot_explains_bad_input():
    with pytest.raises(TypeError, match="StepLosses"):
        plots.plot_gan_losses([0.1, 0.2])
    with pytest.raises(ValueError, match="one loss per recorded step"):
        plots.plot_gan_losses({"steps": [1, 2, 3], "d_loss": [0.1, 0.2]})
    with pytest.raises(ValueError, match="non-empty"):
        plots.plot_gan_losses({"steps": [], "d_loss": []})
    with pytest.raises(TypeError, match="reference must map"):
        plots.plot_gan_losses({"steps": [1], "d_loss": [0.1]}, reference=0.69)
