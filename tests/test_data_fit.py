"""TFRecords -> tf.data -> model.fit, with masked missing labels (TF and JAX backends)."""

import keras
import nibabel as nib
import numpy as np

from kerasbrain.data import tfrecord_dataset, write_tfrecords


def cohort(folder, n=8):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = folder / f"s{i}.nii"
        nib.save(nib.Nifti1Image((rng.random((16, 16, 16)) + i).astype("float32"), np.eye(4)), str(path))
        rows.append({"id": f"s{i}", "path": str(path), "age": None if i in (1, 5) else 30.0 + i,
                     "group": None if i == 6 else ("AD" if i % 2 else "CN")})
    return rows


def tiny_model():
    inputs = keras.Input((16, 16, 16, 1))
    x = keras.layers.Conv3D(2, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling3D()(x)
    outputs = {"age": keras.layers.Dense(1, name="age")(x),
               "group": keras.layers.Dense(2, activation="softmax", name="group")(x)}
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss={"age": "mse", "group": "sparse_categorical_crossentropy"})
    return model


def test_fit_and_missing_label_masking(tmp_path):
    rows = cohort(tmp_path)
    write_tfrecords(rows, tmp_path / "out", shards=2, workers=1, progress=False)
    model = tiny_model()
    train = tfrecord_dataset(tmp_path / "out", batch_size=4, shuffle=True, augment=True, seed=0)
    history = model.fit(train, epochs=2, verbose=0)
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert set(history.history) >= {"loss", "age_loss", "group_loss"}

    # One batch of all rows: the age loss only counts rows with an age.
    full = tfrecord_dataset(tmp_path / "out", batch_size=8)
    x, y, w = next(iter(full))
    np.testing.assert_array_equal(np.asarray(w["age"]), [1, 0, 1, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(np.asarray(w["group"]), [1, 1, 1, 1, 1, 1, 0, 1])
    predicted = keras.ops.convert_to_numpy(model.predict(np.asarray(x), verbose=0)["age"])[:, 0]
    ages = np.array([np.nan if r["age"] is None else r["age"] for r in rows])
    present = ~np.isnan(ages)
    expected = ((predicted[present] - ages[present]) ** 2).sum() / 8
    result = model.evaluate(full, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["age_loss"], expected, rtol=1e-4)
