"""Quality figures recorded by notebooks for the benchmark report."""

import json

import numpy as np
import pytest

from course_utils import files, report


@pytest.fixture
def quality_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(report.QUALITY_DIR_ENV_VAR, str(tmp_path))
    return tmp_path


def test_figures_are_saved_per_mode_merged_and_printed(quality_dir, smoke_run, capsys):
    report.record_quality("12", smoke_run, dcgan_fid=np.float32(12.5), anomaly_auc=0.9)
    report.record_quality("12", smoke_run, anomaly_auc=0.95)
    report.record_quality("02", smoke_run, rounded_accuracy=0.93)
    saved = json.loads((quality_dir / "smoke" / "12.json").read_text())
    assert saved == {"dcgan_fid": 12.5, "anomaly_auc": 0.95}
    assert report.load_quality("smoke") == {"02": {"rounded_accuracy": 0.93}, "12": saved}
    assert report.load_quality("default") == {}
    assert "anomaly_auc = 0.95" in capsys.readouterr().out
    # Exactly the two records, whatever a temporary file would be called: nothing left behind.
    assert sorted(path.name for path in quality_dir.iterdir()) == ["smoke"]
    assert sorted(path.name for path in (quality_dir / "smoke").iterdir()) == ["02.json", "12.json"]


def test_bad_figures_and_damaged_records_are_explained(quality_dir, smoke_run):
    with pytest.raises(ValueError, match="two-digit"):
        report.record_quality("12_eval", smoke_run, fid=1.0)
    with pytest.raises(ValueError, match="at least one"):
        report.record_quality("12", smoke_run)
    with pytest.raises(ValueError, match="finite"):
        report.record_quality("12", smoke_run, fid=float("nan"))
    with pytest.raises(TypeError, match="must be a number"):
        report.record_quality("12", smoke_run, fid="low")
    damaged = quality_dir / "smoke" / "03.json"
    damaged.parent.mkdir()
    damaged.write_text("{not json")
    with pytest.raises(ValueError, match="delete it and re-run"):
        report.load_quality("smoke")


def test_figure_names_are_lowercase_words_joined_by_underscores():
    assert report.figure_name("MSE", "plain AE", "on", "pixels dropped") == (
        "mse_plain_ae_on_pixels_dropped")
    assert report.figure_name("effective classes", "GAN (notebook 9)") == (
        "effective_classes_gan_notebook_9")
    with pytest.raises(ValueError, match="letters or digits"):
        report.figure_name("--", "")


def test_a_killed_writers_temp_file_is_not_read_as_a_notebook(quality_dir, smoke_run):
    report.record_quality("12", smoke_run, anomaly_auc=0.9)
    leftover = quality_dir / "smoke" / f".12.json-999999-abcd{files.PART_MARKER}.json"
    leftover.write_text('{"anomaly_auc": 0.1', encoding="utf-8")  # cut off mid-write
    assert report.load_quality("smoke") == {"12": {"anomaly_auc": 0.9}}


def test_a_quality_folder_that_is_a_file_gets_a_clear_error(monkeypatch, tmp_path, smoke_run):
    (tmp_path / "quality").write_text("not a folder")
    monkeypatch.setenv(report.QUALITY_DIR_ENV_VAR, str(tmp_path / "quality"))
    with pytest.raises(NotADirectoryError, match="names a file.*point it at a folder"):
        report.record_quality("12", smoke_run, anomaly_auc=0.9)
    monkeypatch.setenv(report.QUALITY_DIR_ENV_VAR, str(tmp_path / "fresh"))
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "smoke").write_text("a file where the mode's folder goes")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder.*Move or delete"):
        report.record_quality("12", smoke_run, anomaly_auc=0.9)
    assert sorted(path.name for path in (tmp_path / "fresh").iterdir()) == ["smoke"]


def test_a_claim_is_printed_recorded_and_the_newest_result_wins(quality_dir, smoke_run, capsys):
    held = report.check_claim("02", smoke_run, "the autoencoder beats PCA on cross-entropy",
                              np.float32(0.27) < 0.29, ae=0.27, pca=0.29)
    assert held is True
    assert capsys.readouterr().out.strip() == (
        "Checked in this run: the autoencoder beats PCA on cross-entropy (ae 0.27, pca 0.29).")
    assert report.check_claim("02", smoke_run, "pretraining helps", np.bool_(False),
                              fine_tuned=0.77, scratch=0.78) is False
    assert capsys.readouterr().out.strip() == (
        "In this run, this did not hold: pretraining helps (fine tuned 0.77, scratch 0.78).")
    report.check_claim("02", smoke_run, "pretraining helps", True)
    claims = report.load_claims("smoke")
    assert list(claims) == ["02"]
    assert claims["02"]["pretraining helps"] == {"held": True, "values": {}, "seed": 42}
    assert claims["02"]["the autoencoder beats PCA on cross-entropy"]["values"] == {
        "ae": 0.27, "pca": pytest.approx(0.29)}
    assert sorted(path.name for path in (quality_dir / "smoke").rglob("*")) == [
        "02.json", "claims"]  # nothing else left behind
    assert report.load_quality("smoke") == {}  # claims are not quality figures


@pytest.mark.parametrize(("arguments", "error", "message"), [
    (("2", "a claim", True), ValueError, "two-digit"),
    (("02", "  ", True), ValueError, "as a sentence"),
    (("02", "a claim", np.array([True, False])), TypeError, r"np\.all"),
    (("02", "a claim", 1), TypeError, "one True or False"),
    (("02", "a claim", None), TypeError, "one True or False"),
])
def test_bad_claims_are_explained(quality_dir, smoke_run, arguments, error, message):
    notebook, claim, holds = arguments
    with pytest.raises(error, match=message):
        report.check_claim(notebook, smoke_run, claim, holds)
    with pytest.raises(ValueError, match="finite"):
        report.check_claim("02", smoke_run, "a claim", True, ratio=float("nan"))
    assert not (quality_dir / "smoke").exists()


def test_a_damaged_claims_record_is_explained(quality_dir, smoke_run):
    path = report.claims_path("03", smoke_run)
    path.parent.mkdir(parents=True)
    path.write_text('{"a claim": {"values": {}}}', encoding="utf-8")
    with pytest.raises(ValueError, match="map each claim to its result; delete it"):
        report.check_claim("03", smoke_run, "another", True)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a readable claims record"):
        report.load_claims("smoke")


def test_a_damaged_quality_record_is_explained(quality_dir, smoke_run):
    path = quality_dir / "smoke" / "12.json"
    path.parent.mkdir(parents=True)
    for text, message in [("{not json", "12.json is not a readable quality record"),
                          ("[1, 2]", "12.json should hold a JSON object; delete it"),
                          ('{"fid": "low"}', "12.json holds a figure that is not a finite.*'fid'")]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            report.load_quality("smoke")
        with pytest.raises(ValueError, match=message):  # recording more must not hide it either
            report.record_quality("12", smoke_run, anomaly_auc=0.9)
    assert path.read_text(encoding="utf-8") == '{"fid": "low"}'  # nothing overwritten


def test_the_reconstruction_table_puts_each_model_beside_its_pca_and_marks_missing_ones():
    quality = {
        "02": {"mse": 0.0137, "pca_mse": 0.0150, "rounded_accuracy": 0.9355,
               "pca_rounded_accuracy": 0.9354, "cross_entropy": 0.285},
        "03": {"tied_rounded_accuracy": 0.932, "tied_pca_rounded_accuracy": 0.930,
               "greedy_mse": 0.02},
        "06": {"mse_plain_on_clean": 0.012},  # a figure that is no reconstruction score
    }
    table = report.tabulate_reconstructions(quality, notebooks=("02", "03", "06", "07"))
    assert table.loc[("02", "main"), "MSE"] == 0.0137
    assert table.loc[("02", "main"), "PCA MSE"] == 0.0150
    assert table.loc[("02", "main"), "PCA rounded accuracy"] == 0.9354
    assert np.isnan(table.loc[("02", "main"), "PCA cross-entropy"])
    assert table.loc[("03", "tied"), "rounded accuracy"] == 0.932
    assert table.loc[("03", "tied"), "PCA rounded accuracy"] == 0.930
    assert table.loc[("03", "greedy"), "MSE"] == 0.02
    assert table.loc[("06", ""), "status"] == "recorded no reconstruction scores"
    only_pca = report.tabulate_reconstructions({"03": {"pca_rounded_accuracy": 0.93}}, ("03",))
    assert only_pca.loc[("03", "PCA baseline"), "PCA rounded accuracy"] == 0.93
    assert table.loc[("07", ""), "status"] == "missing: run this notebook first"
    assert list(table.columns) == ["status", "rounded accuracy", "PCA rounded accuracy", "MSE",
                                   "PCA MSE", "cross-entropy", "PCA cross-entropy"]


def test_the_reconstruction_table_reads_recorded_figures_and_refuses_bad_input(
        quality_dir, smoke_run, capsys):
    report.record_quality("04", smoke_run, rounded_accuracy=0.94, pca_rounded_accuracy=0.93)
    table = report.tabulate_reconstructions(report.load_quality("smoke"))
    assert table.loc[("04", "main"), "PCA rounded accuracy"] == 0.93
    assert table.loc[("02", ""), "status"] == "missing: run this notebook first"
    with pytest.raises(TypeError, match="load_quality"):
        report.tabulate_reconstructions([("04", {})])
    with pytest.raises(TypeError, match="load_quality"):
        report.tabulate_reconstructions({"04": 0.93})
    with pytest.raises(ValueError, match="two-digit"):
        report.tabulate_reconstructions({}, notebooks=("4",))
