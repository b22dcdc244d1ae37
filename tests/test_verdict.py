"""The verdict says holds / does not hold from the numbers alone, and shows them."""

import numpy as np

from collapse_jax.study import verdict


def _rows(entropy, score, mem, held=3000.0):
  series = zip(entropy, score, mem, strict=True)
  return [{"generation": g + 1, "train_entropy": e, "gen_score": s, "memorized_frac": m,
           "heldout_score": held} for g, (e, s, m) in enumerate(series)]


def test_collapse_claims_hold_on_a_collapsing_run():
  rows = _rows([340, 320, 300, 305, 280, 270], [800, 500, 400, 380, 350, 390],
               [0.01, 0.05, 0.1, 0.2, 0.2, 0.3])
  claims = verdict.collapse_claims(rows)
  assert [c.holds for c in claims] == [True, True, True, True]
  assert "4 falls" in claims[1].measured and "at least 4 of 5" in claims[1].text
  assert "ratio 0.49" in claims[2].measured


def test_collapse_claims_fail_where_the_numbers_do():
  rows = _rows([340, 350, 330, 340, 320, 330], [800, 700, 600, 500, 450, 420],
               [0.3, 0.2, 0.1, 0.1, 0.1, 0.1], held=700.0)
  claims = verdict.collapse_claims(rows)
  assert [c.verdict for c in claims] == ["does not hold"] * 4
  table = verdict.markdown(claims)
  assert "0 of 4 claims hold" in table and table.count("does not hold") == 4


def test_claims_without_their_metrics_are_left_out():
  rows = [{"generation": 1, "train_entropy": 3.0}, {"generation": 2, "train_entropy": 2.0}]
  assert [c.holds for c in verdict.collapse_claims(rows)] == [True]
  rows[1]["gen_score"] = float("nan")
  assert len(verdict.collapse_claims(rows)) == 1
  assert "No claim" in verdict.markdown([])


def test_remedy_claims_compare_the_last_shared_generation():
  rng = np.random.default_rng()
  vanilla = _rows(*rng.uniform(1, 2, (3, 6)))
  better = _rows([r["train_entropy"] + 1 for r in vanilla], [r["gen_score"] + 1 for r in vanilla],
                 [r["memorized_frac"] - 1 for r in vanilla])[:5]
  worse = _rows([1.0] * 6, [1.0] * 6, [3.0] * 6)
  claims = verdict.remedy_claims(vanilla, {"greedy": better, "threshold": worse})
  assert [c.holds for c in claims] == [True, True, True, False, False, False]
  assert all("generation 5" in c.text for c in claims[:3])
  assert all("generation 6" in c.text for c in claims[3:])
  e_better, e_vanilla = better[4]["train_entropy"], vanilla[4]["train_entropy"]
  assert claims[0].measured == f"{e_better:.4g} vs {e_vanilla:.4g}"


def test_copy_test_context_reads_spacing_from_entropy():
  rows = [{"train_entropy": 300.0, "gen_score": 800.0, "pixel_dim": 64},
          {"train_entropy": 300.0 - 64 * np.log(4), "gen_score": 200.0, "pixel_dim": 64}]
  text = verdict.copy_test_context(rows)
  assert "factor 0.25" in text and "image by 0.50" in text and "passes fewer" in text
  assert verdict.copy_test_context(rows[:1]) is None
