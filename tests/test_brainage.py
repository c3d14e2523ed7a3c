import numpy as np
import pytest

from kerasbrain import brainage

pytestmark = pytest.mark.backend_independent


@pytest.fixture
def cohort():
    rng = np.random.default_rng(1)
    age = rng.uniform(20, 80, 200)
    predicted = 0.7 * age + 15 + rng.normal(0, 3, 200)  # regression to the mean
    return predicted, age


def test_cole_and_beheshti_equal_closed_form(cohort):
    predicted, age = cohort
    a, b = np.polyfit(age, predicted, 1)
    cole = brainage.BiasCorrection("cole").fit(predicted, age)
    np.testing.assert_allclose(cole.transform(predicted, age), (predicted - b) / a, rtol=1e-12)
    beheshti = brainage.BiasCorrection("beheshti").fit(predicted, age)
    np.testing.assert_allclose(beheshti.transform(predicted, age),
                               predicted - (a * age + b - age), rtol=1e-12)
    # Beheshti's corrected gap is the residual of predicted on age: uncorrelated with age
    assert abs(np.corrcoef(beheshti.transform(predicted, age) - age, age)[0, 1]) < 1e-10


def test_smith_equals_residual_of_gap_on_demeaned_age(cohort):
    predicted, age = cohort
    correction = brainage.BiasCorrection("smith", degree=2).fit(predicted, age)
    centred = age - age.mean()
    design = np.stack([np.ones_like(age), centred, centred**2], 1)
    coef = np.linalg.solve(design.T @ design, design.T @ (predicted - age))
    expected = age + (predicted - age) - design @ coef
    np.testing.assert_allclose(correction.transform(predicted, age), expected, rtol=1e-10)


def test_fit_on_validation_transform_on_test(cohort):
    predicted, age = cohort
    correction = brainage.BiasCorrection("cole").fit(predicted[:100], age[:100])
    corrected = correction.transform(predicted[100:], age[100:])
    before = abs(np.corrcoef(brainage.gap(predicted[100:], age[100:]), age[100:])[0, 1])
    after = abs(np.corrcoef(corrected - age[100:], age[100:])[0, 1])
    assert before > 0.5 and after < before


def test_metrics_keep_uncorrected_mae(cohort):
    predicted, age = cohort
    corrected = brainage.BiasCorrection("beheshti").fit_transform(predicted, age)
    scores = brainage.metrics(predicted, age, corrected)
    assert scores["mae"] == pytest.approx(np.mean(np.abs(predicted - age)))
    assert scores["r"] == pytest.approx(np.corrcoef(predicted, age)[0, 1])
    residual = predicted - age
    assert scores["r2"] == pytest.approx(1 - np.sum(residual**2) / np.sum((age - age.mean()) ** 2))
    assert scores["corrected_r2"] > scores["r2"]  # correction inflates R^2
    assert "corrected_mae" in scores and scores["mean_gap"] == pytest.approx(residual.mean())


def test_bad_input():
    with pytest.raises(ValueError, match="method must be one of"):
        brainage.BiasCorrection("linear")
    with pytest.raises(ValueError, match="differ in length"):
        brainage.gap([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="not fitted"):
        brainage.BiasCorrection().transform([50.0], [50.0])
    with pytest.raises(ValueError, match="different ages"):
        brainage.BiasCorrection().fit([50.0, 51.0], [60.0, 60.0])
    with pytest.raises(ValueError, match="NaN"):
        brainage.gap([np.nan], [1.0])


def test_flat_predictions_warn_before_correcting(cohort, recwarn):
    _, age = cohort
    flat = 50 + 0.02 * age + np.random.default_rng(0).normal(0, 1, age.size)  # ignores age
    with pytest.warns(UserWarning, match=r"slope of predicted on age is 0\.0\d.*amplified noise"):
        brainage.BiasCorrection("cole").fit(flat, age)
    with pytest.warns(UserWarning, match="mostly chronological age"):
        brainage.BiasCorrection("beheshti").fit(flat, age)
    predicted, _ = cohort
    brainage.BiasCorrection("cole").fit(predicted, age)  # slope 0.7: no warning
    assert not [w for w in recwarn if "slope" in str(w.message)]
