"""The headless runner and the benchmark table (tools/), on a tiny notebook of their own."""

import json
import math
import os

import nbformat
import numpy as np
import pytest

from course_utils import checkpoints
from tools.benchmark import (
    exercise_parts,
    format_exercise_table,
    format_quality_table,
    format_table,
    plot_times,
)
from tools.run_notebooks import (
    NotebookRun,
    chapter_groups,
    execute_in_order,
    execute_notebook,
    save_outputs,
)

TINY = [
    "import os\nmode = os.environ['COURSE_MODE']",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
    "print(mode)",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nb")
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_markdown_cell("# 9. Tiny")]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in TINY]
    path = folder / "09_tiny.ipynb"
    nbformat.write(notebook, path)
    return execute_notebook(path, "smoke", timeout=120), folder


def test_runner_executes_in_the_requested_mode_and_measures(tiny_run):
    run, _ = tiny_run
    assert run.ok, run.error
    assert [cell.cell_type for cell in run.executed.cells] == ["markdown", "code", "code", "code"]
    assert run.executed.cells[3].outputs[0]["text"].strip() == "smoke"
    assert 0 < run.seconds < 60
    assert 50 < run.peak_mib < 10_000  # a Python kernel with matplotlib, in MiB
    assert set(run.cell_seconds) == {1, 2, 3}


def test_runner_writes_notebook_html_and_figures(tiny_run, tmp_path):
    run, _ = tiny_run
    save_outputs(run, tmp_path)
    assert (tmp_path / "09_tiny.ipynb").is_file()
    assert "<html" in (tmp_path / "09_tiny.html").read_text()
    pngs = list((tmp_path / "figures").glob("09_tiny-*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes().startswith(b"\x89PNG")


def test_runner_reports_a_failing_cell(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("raise RuntimeError('broken on purpose')")]
    path = tmp_path / "08_broken.ipynb"
    nbformat.write(notebook, path)
    run = execute_notebook(path, "smoke", timeout=120)
    assert not run.ok
    assert "broken on purpose" in run.error
    assert math.isnan(run.seconds)


def test_benchmark_table_has_a_row_per_notebook_and_columns_per_mode(tmp_path):
    runs = [
        NotebookRun(tmp_path / "00_a.ipynb", "smoke", seconds=1.25, peak_mib=512.4),
        NotebookRun(tmp_path / "00_a.ipynb", "default", seconds=10.0, peak_mib=900),
        NotebookRun(tmp_path / "01_b.ipynb", "smoke", error="boom"),
    ]
    lines = format_table(runs).splitlines()
    assert lines[0] == ("| notebook | smoke time (s) | smoke peak (MiB) | default time (s) "
                        "| default peak (MiB) |")
    assert lines[2] == "| 00_a.ipynb | 1.2 | 512 | 10.0 | 900 |"
    assert lines[3] == "| 01_b.ipynb | FAILED |  |  |  |"


def _solutions_run(tmp_path, mode, seconds):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Solutions to notebook 3: x"),
        nbformat.v4.new_code_cell("chapter = ..."),
        nbformat.v4.new_markdown_cell("## Exercise 1\n\n*Do it.*"),
        nbformat.v4.new_code_cell("a = 1"),
        nbformat.v4.new_code_cell("b = 2"),
        nbformat.v4.new_markdown_cell("## Exercise 2"),
        nbformat.v4.new_code_cell("c = 3"),
    ]
    notebook.cells[4].outputs = [nbformat.v4.new_output(
        "stream", name="stdout", text="Checked in this run: exercise 1: a (x 1).\n"
        "In this run, this did not hold: exercise 1: b.\nother text\n")]
    return NotebookRun(tmp_path / "03_x_solutions.ipynb", mode, executed=notebook,
                       seconds=sum(seconds.values()), cell_seconds=seconds)


def test_each_exercise_gets_its_cells_time_and_its_claims(tmp_path):
    run = _solutions_run(tmp_path, "default", {1: 20.0, 3: 1.5, 4: 2.0, 6: 0.25})
    assert exercise_parts(run) == {
        "running the chapter quietly": {"seconds": 20.0, "claims": 0, "held": 0},
        "exercise 1": {"seconds": 3.5, "claims": 2, "held": 1},
        "exercise 2": {"seconds": 0.25, "claims": 0, "held": 0}}
    runs = [run, _solutions_run(tmp_path, "smoke", {1: 2.0, 3: 0.1, 4: 0.1, 6: 0.1}),
            NotebookRun(tmp_path / "03_x.ipynb", "default", seconds=5.0)]
    lines = format_exercise_table(runs).splitlines()
    assert lines[0] == ("| solutions notebook | part | default time (s) | default claims held "
                        "| smoke time (s) | smoke claims held |")
    assert lines[3] == "| 03_x_solutions.ipynb | exercise 1 | 3.5 | 1 of 2 | 0.2 | 1 of 2 |"
    assert lines[4] == "| 03_x_solutions.ipynb | exercise 2 | 0.2 | - | 0.1 | - |"
    assert len(lines) == 5  # the chapter's own run is not a solutions notebook
    assert format_exercise_table(runs[2:]) == "(no solutions notebook was run)"


def test_benchmark_quality_table_and_time_plot(tmp_path):
    quality = {"smoke": {"12": {"dcgan_fid": 40.123, "anomaly_auc": 0.5}},
               "default": {"12": {"dcgan_fid": 9.5}, "02": {"rounded_accuracy": 0.9347}}}
    lines = format_quality_table(quality).splitlines()
    assert lines[0] == "| notebook | figure | smoke | default |"
    assert lines[2:] == ["| 02 | rounded_accuracy |  | 0.9347 |",
                         "| 12 | anomaly_auc | 0.5 |  |",
                         "| 12 | dcgan_fid | 40.12 | 9.5 |"]
    assert "no quality figures" in format_quality_table({"smoke": {}})
    runs = [NotebookRun(tmp_path / "00_a.ipynb", "smoke", seconds=1.0, peak_mib=1.0),
            NotebookRun(tmp_path / "00_a.ipynb", "default", seconds=30.0, peak_mib=1.0)]
    plot_times(runs, tmp_path / "times.png")
    assert (tmp_path / "times.png").read_bytes()[:4] == b"\x89PNG"


def test_gan_speed_times_both_loops_and_checks_both_train():
    from tools import gan_speed

    result = gan_speed.measure_gan_speed(n_images=320, rounds=1)
    assert result["batches_per_epoch"] == 10
    assert len(result["compiled_seconds"]) == len(result["textbook_seconds"]) == 1
    assert result["compiled_trains_both"] and result["textbook_trains_both"]
    assert result["speedup"] == pytest.approx(
        result["textbook_seconds"][0] / result["compiled_seconds"][0]
    )
    table = gan_speed.format_gan_speed(result)
    assert "| textbook: train_on_batch per phase per batch |" in table
    assert f"**{result['speedup']:.2f}x**" in table


def _save_entry(model_root, notebook, name, key, train_seconds, written_at):
    """An entry in the form checkpoints saves it (an .npz with a "manifest.json" array)."""
    path = model_root / "trained" / notebook / f"{name}-default-{key}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {"format": checkpoints.FORMAT, "notebook": notebook, "name": name,
                "mode": "default", "key": key, "train_seconds": train_seconds}
    np.savez(path, **{"manifest.json": np.array(json.dumps(manifest)), "variable/0": np.ones(3)})
    os.utime(path, (written_at, written_at))
    return path


def _timed_run(path, seconds, cell_seconds, started_at=1_000_000.0):
    """A run whose cells took cell_seconds, one after the other, from started_at (wall clock)."""
    finished_at, clock = {}, started_at
    for index, took in cell_seconds.items():
        clock += took
        finished_at[index] = clock
    return NotebookRun(path=path, mode="default", seconds=seconds, cell_seconds=cell_seconds,
                       cell_finished_at=finished_at)


def test_train_once_table_gives_the_ratio_and_counts_trained_and_reloaded_models(tmp_path):
    from tools.benchmark import TrainOnceRun, format_train_once_table, list_saved

    root = tmp_path / "models"
    empty = list_saved(root)
    # The first run of 01_a trains two models in its second cell (1,000,005 to 1,000,106 s).
    _save_entry(root, "01", "conv_ae", "aaaaaaaaaaaa", 60.5, 1_000_050.0)
    _save_entry(root, "01", "dense_ae", "bbbbbbbbbbbb", 39.5, 1_000_100.0)
    # compute_once's arrays have no manifest: not a model training.
    np.savez(root / "trained" / "01" / "tsne-default-cccccccccccc.npz", result=np.zeros(2))
    saved = list_saved(root)
    assert [entry.manifest["name"] for entry in saved.values()] == ["conv_ae", "dense_ae"]
    first = [TrainOnceRun(_timed_run(tmp_path / "01_a.ipynb", 120.0, {0: 5.0, 1: 101.0}),
                          empty, saved),
             TrainOnceRun(_timed_run(tmp_path / "00_b.ipynb", 10.0, {0: 10.0}), saved, saved)]
    second = [TrainOnceRun(_timed_run(tmp_path / "01_a.ipynb", 8.0, {0: 4.0, 1: 0.5}),
                           saved, saved),
              TrainOnceRun(_timed_run(tmp_path / "00_b.ipynb", 9.0, {0: 9.0}), saved, saved)]
    table = format_train_once_table(first, second).splitlines()
    assert "models reloaded (first run's entries left as they were)" in table[0]
    assert table[2] == "| 01_a.ipynb | 120.0 | 2 | 100.0 | 8.0 | 2 | 0 | 15.0x | 101.0 → 0.5 |"
    assert table[3] == "| 00_b.ipynb | 10.0 | 0 |  | 9.0 | 0 | 0 | (trains nothing) |  |"

    def columns(row):
        return format_train_once_table(first, second).splitlines()[row].split(" | ")

    # A key that changed without an edit: the second run saves conv_ae anew under another key.
    _save_entry(root, "01", "conv_ae", "dddddddddddd", 61.0, 1_000_200.0)
    second[0].after = list_saved(root)
    assert columns(2)[5:7] == ["1", "1"]  # dense_ae reloaded, conv_ae trained again
    # The same key trained again (RETRAIN left on, say): its file is written anew.
    _save_entry(root, "01", "dense_ae", "bbbbbbbbbbbb", 39.0, 1_000_300.0)
    second[0].after = list_saved(root)
    assert columns(2)[5:7] == ["0", "2"]
    second[0].run.error = "boom"
    assert "FAILED" in format_train_once_table(first, second).splitlines()[2]


def test_the_claims_check_runs_each_seed_and_fails_on_a_claim_that_did_not_hold(
        tmp_path, monkeypatch):
    from tools import claims

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_code_cell(
        "import os\nfrom course_utils import config, report\n"
        "run = config.RunSettings(os.environ['COURSE_MODE'], config.resolve_seed())\n"
        "report.check_claim('09', run, 'the seed is even', run.seed % 2 == 0, seed=run.seed)")]
    path = tmp_path / "09_claims.ipynb"
    nbformat.write(notebook, path)
    monkeypatch.setattr(claims, "CLAIMS_DIR", tmp_path / "claims")
    assert claims.main([str(path), "--mode", "smoke", "--seeds", "42", "7"]) == 1
    table = (tmp_path / "claims" / "claims_smoke.md").read_text(encoding="utf-8")
    assert "1 of 2 checks held" in table
    assert "| 09 | the seed is even | held (seed 42) | **did not hold** (seed 7) |" in table
    assert claims.main([str(path), "--mode", "smoke", "--seeds", "42"]) == 0


def _tiny_notebook(path, *sources):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, path)
    return path


def test_chapter_groups_put_solutions_after_their_chapter_and_order_the_dependencies(tmp_path):
    (tmp_path / "solutions").mkdir()
    paths = [
        _tiny_notebook(tmp_path / "08_vae.ipynb", "evaluation.publish_model(decoder, 'vae', run)"),
        _tiny_notebook(tmp_path / "09_gan.ipynb", "x = 1"),
        _tiny_notebook(tmp_path / "solutions" / "09_gan_solutions.ipynb",
                       'solutions.run_chapter("09")\nsolutions.run_chapter("08")'),
        _tiny_notebook(tmp_path / "12_eval.ipynb", "evaluation.load_published_model('vae', run)"),
    ]
    plan = chapter_groups(paths)
    assert {number: ([path.name for path in members], needs)
            for number, (members, needs) in plan.items()} == {
        "08": (["08_vae.ipynb"], set()),
        "09": (["09_gan.ipynb", "09_gan_solutions.ipynb"], {"08"}),
        "12": (["12_eval.ipynb"], {"08"})}
    # A chapter that is not being run is no reason to wait.
    assert chapter_groups(paths[3:])["12"][1] == set()


def test_notebooks_run_two_at_a_time_in_the_order_listed(tmp_path):
    stamp = "import time, pathlib\npathlib.Path({!r}).write_text(str(time.time()))"
    paths = [_tiny_notebook(tmp_path / "08_a.ipynb", "evaluation = None",
                            "# publish_model( is what 12 waits for",
                            stamp.format(str(tmp_path / "08.done"))),
             _tiny_notebook(tmp_path / "09_b.ipynb", "print('b')"),
             _tiny_notebook(tmp_path / "12_c.ipynb", "# load_published_model(",
                            stamp.format(str(tmp_path / "12.started")))]
    seen = []
    runs = execute_in_order(paths, "smoke", jobs=2, on_done=lambda run: seen.append(run.path.name))
    assert [run.path.name for run in runs] == ["08_a.ipynb", "09_b.ipynb", "12_c.ipynb"]
    assert all(run.ok for run in runs) and sorted(seen) == sorted(run.path.name for run in runs)
    assert float((tmp_path / "12.started").read_text()) > float(
        (tmp_path / "08.done").read_text())


def test_hash_search_benchmark_times_three_searches_on_the_same_data():
    from tools.benchmark import format_hash_search, measure_hash_search

    rng = np.random.default_rng(0)
    rows = measure_hash_search(rng.random((300, 28, 28)), rng.random((5, 28, 28)))
    assert [row["search"].split(",")[0] for row in rows] == [
        "Hamming", "Euclidean on pixels", "Euclidean on pixels"]
    assert all(row["seconds_per_query"] > 0 for row in rows)
    assert rows[0]["database_bytes"] == 300 * 2  # 16 bits each
    assert rows[1]["database_bytes"] == 300 * 784 * 4  # float32 pixels
    table = format_hash_search(rows, 300)
    assert table.count("\n| ") == 4 and "Nearest 10 of 300 images" in table


def test_sampling_benchmark_times_each_generator_with_its_steps():
    import keras

    from course_utils import diffusion_layers
    from tools.benchmark import format_sampling, measure_sampling

    images, times, labels = keras.Input((2, 2, 1)), keras.Input(()), keras.Input((), dtype="int32")
    denoiser = keras.Model([images, times, labels], keras.layers.Conv2D(1, 1)(images))
    codings, classes = keras.Input((4,)), keras.Input((), dtype="int32")
    generators = {
        "plain": keras.Model(codings, diffusion_layers.DiffusionSampler(
            denoiser, steps=3, alpha_bars=[0.9, 0.5, 0.1])(codings)),
        "guided": keras.Model([codings, classes], diffusion_layers.DiffusionSampler(
            denoiser, steps=2, prediction="velocity", guidance=2.0)([codings, classes])),
    }
    rows = measure_sampling(generators, n_images=20, rounds=1, batch_size=10)
    assert [row["generator"] for row in rows] == ["plain", "guided"]
    assert [row["steps"] for row in rows] == [3, 2]
    assert all(row["seconds"] > 0 for row in rows)
    table = format_sampling(rows, 20)
    assert "| plain | 3 |" in table and "| guided | 2 |" in table
