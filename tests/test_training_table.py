"""The ``table`` data source of train/finetune configs reads scans through a Preprocessor."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from kerasbrain import tasks, training

pytestmark = pytest.mark.backend_independent


def _table(tmp_path, affines, shapes):
    rows = []
    for i, (affine, shape) in enumerate(zip(affines, shapes, strict=True)):
        path = tmp_path / f"sub-{i}.nii.gz"
        array = np.random.default_rng(i).random(shape).astype("float32")
        nib.save(nib.Nifti1Image(array, affine), path)
        rows.append({"path": str(path), "age": 40.0 + i})
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    return str(tmp_path / "t.csv")


def test_table_scans_are_reoriented_like_tfrecords(tmp_path):
    las = np.diag([-1.0, 1.0, 1.0, 1.0])
    table = _table(tmp_path, [np.eye(4), las], [(6, 7, 8)] * 2)
    x, y, w = training.load_data({"table": table}, [tasks.Regression("age")], 2, False, 0)
    assert x.shape == (2, 6, 7, 8, 1) and x.dtype == np.float32
    raw = [np.asarray(nib.load(tmp_path / f"sub-{i}.nii.gz").dataobj) for i in range(2)]
    np.testing.assert_array_equal(x[0, ..., 0], raw[0])
    np.testing.assert_array_equal(x[1, ..., 0], raw[1][::-1])  # LAS -> RAS
    np.testing.assert_array_equal(np.ravel(y["age"]), [40.0, 41.0])


def test_table_scans_of_another_shape_name_the_row(tmp_path):
    table = _table(tmp_path, [np.eye(4)] * 2, [(6, 7, 8), (6, 7, 9)])
    with pytest.raises(ValueError, match=r"t\.csv: row 1: .*sub-1\.nii\.gz: preprocessed shape "
                                         r"\(6, 7, 9\) differs from row 0's \(6, 7, 8\)"):
        training.load_data({"table": table}, [tasks.Regression("age")], 2, False, 0)
