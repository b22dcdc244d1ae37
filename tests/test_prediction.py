"""The prediction report (study/prediction.py): pairs, correlations and the finding."""

import math

from collapse_jax.study import prediction


def runs(rng, t_noise: float, h_noise: float, n_runs: int = 4):
  """Rows whose log(gen score / held-out) follows a latent z, with t_C and the entropy
  reading z through noise of the given sizes."""
  out = []
  for _ in range(n_runs):
    rows = []
    for g in range(1, 7):
      z = -0.2 * g + rng.normal(0, 0.05)
      rows.append({"generation": g, "gen_score": 100 * math.exp(z), "heldout_score": 100.0,
                   "collapse_t": 0.5 + z + rng.normal(0, t_noise),
                   "train_entropy": 300 + 50 * z + rng.normal(0, h_noise)})
    out.append(rows)
  return out


def test_the_better_predictor_is_named_and_inf_rows_are_left_out(tmp_path, rng):
  data = runs(rng, t_noise=0.01, h_noise=40.0)
  data[0][0]["collapse_t"] = math.inf  # off the schedule: left out, counted
  lines = prediction.write({"arm": data}, str(tmp_path))
  text = "\n".join(lines)
  print(text)
  assert "| 23 | 1 |" in text  # t_C: 23 pairs, 1 left out
  assert "t_C predicts the generalization score better than the KL entropy" in text
  assert "a larger t_C went with more generalization" in text
  assert (tmp_path / "prediction.png").exists()


def test_the_other_way_and_a_tie_are_reported_too(tmp_path, rng):
  text = "\n".join(prediction.write({"a": runs(rng, 2.0, 0.5)}, str(tmp_path)))
  assert "The KL entropy predicts the generalization score better than t_C" in text
  text = "\n".join(prediction.write({"a": runs(rng, 0.05, 2.5, n_runs=1)}, str(tmp_path)))
  assert "Neither predictor is shown better" in text
