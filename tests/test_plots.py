"""Plot helpers: what they draw, and the errors they give for input they cannot draw."""

from types import SimpleNamespace

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
