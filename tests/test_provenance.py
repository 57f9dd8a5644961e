"""Provenance records: software versions, model folders, the input dataset as BIDS SourceDatasets names it."""

import json

import prlkit
from prlkit.provenance import software_versions, source_dataset


def test_software_versions_name_prlkit_python_and_the_numerical_libraries(monkeypatch):
    monkeypatch.setattr(prlkit, "__version__", "9.9.9")
    versions = software_versions()
    assert versions["prlkit"] == "9.9.9"
    assert set(versions) == {"prlkit", "python", "torch", "monai", "scikit-learn", "numpy"}
    assert all(value and value != "not installed" for value in versions.values())


def test_source_dataset_takes_doi_and_name_from_the_dataset_description(tmp_path):
    assert source_dataset(tmp_path) == {"URL": tmp_path.resolve().as_uri()}  # no description
    (tmp_path / "dataset_description.json").write_text(json.dumps({"Name": "MS cohort", "DatasetDOI": "doi:10.1/x"}))
    assert source_dataset(tmp_path) == {"URL": tmp_path.resolve().as_uri(), "DOI": "doi:10.1/x", "Name": "MS cohort"}
    (tmp_path / "dataset_description.json").write_text("{not json")
    assert source_dataset(tmp_path) == {"URL": tmp_path.resolve().as_uri()}
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("participant_id,qsm\n")
    assert source_dataset(manifest) == {"URL": manifest.resolve().as_uri()}
