"""Run modes, seeding, quiet TensorFlow import and plot defaults (course_utils.config)."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from course_utils import config


def test_mode_argument_wins_over_environment(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "book")
    assert config.resolve_mode("smoke") == "smoke"


def test_mode_comes_from_environment_then_default(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", " Smoke ")
    assert config.resolve_mode() == "smoke"
    monkeypatch.delenv("COURSE_MODE")
    assert config.resolve_mode() == "default"
    monkeypatch.setenv("COURSE_MODE", "")
    assert config.resolve_mode() == "default"


@pytest.mark.parametrize(("argument", "env", "source"), [
    ("fast", None, "argument"),
    (None, "quick", "environment variable"),
])
def test_unknown_mode_names_choices_and_source(monkeypatch, argument, env, source):
    if env is None:
        monkeypatch.delenv("COURSE_MODE", raising=False)
    else:
        monkeypatch.setenv("COURSE_MODE", env)
    with pytest.raises(ValueError) as error:
        config.resolve_mode(argument)
    message = str(error.value)
    assert source in message
    for mode in config.MODES:
        assert f'"{mode}"' in message


def test_pick_returns_the_size_of_the_mode():
    sizes = {"smoke": 1, "default": 20, "book": 200}
    for mode, expected in sizes.items():
        assert config.RunSettings(mode, 42).pick(**sizes) == expected


def test_pick_book_falls_back_to_default():
    assert config.RunSettings("book", 0).pick(smoke=1, default=20) == 20
    assert config.RunSettings("smoke", 0).is_smoke
    assert not config.RunSettings("default", 0).is_smoke


def test_settings_print_their_mode():
    text = str(config.RunSettings("smoke", 7))
    assert text.startswith("Run mode: smoke (")
    assert "seed 7" in text


def _draws(seed):
    import keras

    config.seed_everything(seed)
    layer = keras.layers.Dense(3)
    layer.build((None, 2))
    return (
        np.random.rand(3),  # noqa: NPY002 - the legacy global generator is what is tested
        np.asarray(keras.random.normal((3,))),
        np.asarray(layer.kernel),
    )


def test_seeding_repeats_numpy_keras_and_initialisers():
    first, again, other = _draws(5), _draws(5), _draws(6)
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_setup_applies_mode_and_plot_defaults(monkeypatch):
    import matplotlib.pyplot as plt
    import plotly.io as pio

    monkeypatch.setenv("COURSE_MODE", "smoke")
    monkeypatch.setattr(pio.renderers, "default", "browser")
    settings = config.setup(seed=3)
    assert settings == config.RunSettings("smoke", 3)
    assert pio.renderers.default == "plotly_mimetype+notebook"  # renderers already imported
    assert plt.rcParams["image.cmap"] == "binary"


def test_plotly_renderer_is_set_without_importing_plotly_renderers():
    # Plotly's renderers take ~2 s to import; setup leaves them to the first plotly figure.
    code = ("import sys; from course_utils import config; config.setup('smoke', plots=True); "
            "print('plotly.io._renderers' in sys.modules)\n"
            "import plotly.io as pio; print(pio.renderers.default)")
    env = {name: value for name, value in os.environ.items() if name != "PLOTLY_RENDERER"}
    result = _run_python(code, env=env)
    assert result.stdout.split()[-2:] == ["False", "plotly_mimetype+notebook"], result.stderr


def test_book_mode_without_gpu_warns_the_student(capsys):
    config.setup("book", plots=False)
    assert "without a GPU" in capsys.readouterr().out


def _run_python(code, **kwargs):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        timeout=120, **kwargs,
    )


def test_tensorflow_imports_without_c_level_chatter():
    result = _run_python("""
        from course_utils import config
        config.quiet_tensorflow()
        import keras
        print(float(keras.ops.sum(keras.layers.Dense(2)(keras.ops.ones((1, 3))) * 0)))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.0"
    assert result.stderr == ""


def test_failed_tensorflow_import_replays_its_error_output(tmp_path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\nos.write(2, b'native library missing\\n')\nraise ImportError('broken build')\n"
    )
    result = _run_python(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from course_utils import config
        config.quiet_tensorflow()
        """
    )
    assert result.returncode != 0
    assert "native library missing" in result.stderr
    assert "ImportError: broken build" in result.stderr


def test_setup_hides_the_ignored_shuffle_warning_for_tf_data(recwarn):
    import keras

    from course_utils import data

    config.setup("smoke", plots=False)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(loss="mse")
    inputs = np.zeros((8, 2), dtype="float32")
    model.fit(data.to_dataset(inputs, inputs, batch_size=4), epochs=1, verbose=0)
    assert not [w for w in recwarn if "shuffle" in str(w.message)]
    # The control: without that filter Keras does warn here, so the check above can fail.
    with warnings.catch_warnings(record=True) as unfiltered:
        warnings.simplefilter("always")
        model.fit(data.to_dataset(inputs, inputs, batch_size=4), epochs=1, verbose=0)
    assert [w for w in unfiltered if "shuffle" in str(w.message)]


def test_the_seed_comes_from_the_argument_then_course_seed_then_42(monkeypatch):
    monkeypatch.delenv(config.SEED_ENV_VAR, raising=False)
    assert config.resolve_seed() == config.DEFAULT_SEED == 42
    monkeypatch.setenv(config.SEED_ENV_VAR, " 7 ")
    assert config.resolve_seed() == 7
    assert config.resolve_seed(3) == 3
    assert config.setup("smoke", plots=False).seed == 7
    for bad in ("seven", "-1", "1.5", str(2**32)):
        monkeypatch.setenv(config.SEED_ENV_VAR, bad)
        with pytest.raises(ValueError, match=r"COURSE_SEED=.* is not a seed: use a whole number"):
            config.resolve_seed()
