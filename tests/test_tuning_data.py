"""kerasbrain.tuning.load_arrays: a TFRecord folder read into memory for cross-validation."""

import numpy as np
import pytest

from kerasbrain import data, tuning
from kerasbrain.datasets import synthetic


@pytest.mark.backend_independent
def test_load_arrays_round_trips_a_tfrecord_folder(tmp_path):
    table = synthetic.make_cohort(6, shape=(12, 12, 12), sites=3, out_dir=tmp_path / "nifti")
    table.loc[2, "age"] = np.nan  # a missing label
    table.to_csv(tmp_path / "table.csv", index=False)
    data.write_tfrecords(
        tmp_path / "table.csv", tmp_path / "shards", labels=["age", "site"],
        root=tmp_path / "nifti", dtype="float32", progress=False, workers=1,
    )  # fmt: skip
    x, y, groups = tuning.load_arrays(tmp_path / "shards", labels=["age"], groups="site")
    assert x.shape == (6, 12, 12, 12, 1) and x.dtype == np.float32
    assert sorted(y) == ["age"]
    volumes, _ = synthetic.make_cohort(6, shape=(12, 12, 12), sites=3)  # the same cohort
    assert np.isnan(y["age"]).sum() == 1
    for i in range(6):  # each record: its own volume, age and site
        if np.isnan(y["age"][i]):
            j = 2
        else:
            j = int(np.flatnonzero(np.isclose(table["age"], y["age"][i]))[0])
        assert groups[i] == table["site"][j]
        np.testing.assert_allclose(x[i, ..., 0], volumes[j], atol=1e-5)
    folds = tuning.split_folds(6, 3, groups=groups)
    for train, val in folds:
        assert not set(groups[train]) & set(groups[val])

    with pytest.raises(ValueError, match="no label 'scanner' for groups"):
        tuning.load_arrays(tmp_path / "shards", groups="scanner")
