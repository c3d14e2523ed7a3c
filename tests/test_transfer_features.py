import numpy as np
import pandas as pd
import pytest

import kerasbrain as kb

pytestmark = pytest.mark.backend_independent


def test_feature_associations_with_and_without_age():
    rng = np.random.default_rng(0)
    age = rng.uniform(20, 80, 300)
    bmi = 0.1 * age + rng.normal(0, 1, 300)
    features = np.stack([age + rng.normal(0, 5, 300),          # age feature
                         bmi - 0.1 * age + rng.normal(0, 0.3, 300),  # bmi beyond age
                         rng.normal(size=300)], 1)
    phenotypes = pd.DataFrame({"age": age, "bmi": bmi})
    phenotypes.loc[:9, "bmi"] = np.nan
    raw = kb.transfer.feature_associations(features, phenotypes)
    r = raw.set_index(["phenotype", "feature"])["r"]
    assert r["age", 0] == pytest.approx(np.corrcoef(features[:, 0], age)[0, 1])
    assert raw.set_index(["phenotype", "feature"])["n"]["bmi", 1] == 290
    residual = kb.transfer.feature_associations(features, phenotypes, residualize="age")
    assert set(residual.phenotype) == {"bmi"}
    # after regressing age out of both, feature 1 carries bmi, feature 0 does not
    rr = residual.set_index("feature")["r"]
    assert abs(rr[1]) > 0.5 and abs(rr[0]) < 0.2
    assert residual.r.abs().is_monotonic_decreasing
    with pytest.raises(KeyError, match="residualize='sex'"):
        kb.transfer.feature_associations(features, phenotypes, residualize="sex")


def test_plot_embedding_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    features = np.r_[rng.normal(0, 1, (20, 5)), rng.normal(4, 1, (20, 5))]
    points = kb.transfer.plot_embedding(features, color=["F"] * 20 + ["M"] * 20,
                                        path=tmp_path / "pca.png")
    assert points.shape == (40, 2) and (tmp_path / "pca.png").stat().st_size > 1000
    assert abs(points[:20, 0].mean() - points[20:, 0].mean()) > 3  # groups separate on PC1
    assert not list(tmp_path.glob("*.tmp*"))
