"""The verdict says holds / does not hold from the numbers alone, and shows them."""

import numpy as np

from collapse_jax.study import verdict


def _rows(entropy, score, mem, held=3000.0, copies=None):
  copies = mem if copies is None else copies
  series = zip(entropy, score, mem, copies, strict=True)
  return [{"generation": g + 1, "train_entropy": e, "gen_score": s, "memorized_frac": m,
           "copy_frac": c, "heldout_score": held} for g, (e, s, m, c) in enumerate(series)]


def test_collapse_claims_hold_on_a_collapsing_run():
  """Generalization (800 / 1120 = 0.71) turning into memorization (390 / 1120 = 0.35)."""
  rows = _rows([340, 320, 300, 305, 280, 270], [800, 500, 400, 380, 350, 390],
               [0.3, 0.2, 0.1, 0.05, 0.0, 0.0], held=1120.0,
               copies=[0.01, 0.05, 0.1, 0.2, 0.2, 0.3])
  claims = verdict.collapse_claims(rows)
  assert [c.holds for c in claims] == [True] * 5
  assert "= 0.714" in claims[0].measured and claims[1].measured.endswith("0.3482")
  assert "4 falls" in claims[2].measured and "at least 4 of 5" in claims[2].text
  assert "ratio 0.49" in claims[3].measured
  assert "copy_frac" in claims[4].text  # decided on copy_frac, not the falling ratio test


def test_collapse_claims_fail_where_the_numbers_do():
  rows = _rows([340, 350, 330, 340, 320, 330], [800, 700, 600, 500, 450, 420],
               [0.3, 0.2, 0.1, 0.1, 0.1, 0.1], held=1170.0)
  claims = verdict.collapse_claims(rows)
  assert [c.verdict for c in claims] == ["does not hold"] * 5
  table = verdict.markdown(claims)
  assert "0 of 5 claims hold" in table and table.count("does not hold") == 5


def test_copies_fall_back_to_the_ratio_test_without_held_out_data():
  rows = [{"generation": g, "train_entropy": 3.0 - g, "memorized_frac": m}
          for g, m in ((1, 0.1), (2, 0.3))]
  claims = verdict.collapse_claims(rows)
  assert "memorized_frac" in claims[-1].text and claims[-1].holds


def test_claims_without_their_metrics_are_left_out():
  rows = [{"generation": 1, "train_entropy": 3.0}, {"generation": 2, "train_entropy": 2.0}]
  assert [c.holds for c in verdict.collapse_claims(rows)] == [True]
  rows[1]["gen_score"] = float("nan")
  assert len(verdict.collapse_claims(rows)) == 1
  assert "No claim" in verdict.markdown([])


def test_remedy_claims_compare_the_last_shared_generation(rng):
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
  assert "shrank by a factor 0.25" in text and "changed by a factor 0.50" in text
  assert "passes fewer" in text
  assert verdict.copy_test_context(rows[:1]) is None


def test_clean_claim_needs_both_the_fd_and_the_probe():
  row = {"generation": 1, "fd_real": 1.9e4, "fd_real_heldout": 2.6e4, "probe_conf": 0.85,
         "real_probe_conf": 0.9}
  claim = verdict.clean_claim(row)
  assert claim.holds and "FD 1.9e+04 vs held-out real 2.6e+04" in claim.measured
  assert "probe confidence 0.850 vs real 0.900" in claim.measured
  assert not verdict.clean_claim(row | {"probe_conf": 0.70}).holds  # 0.70 < 0.8 x 0.9
  assert not verdict.clean_claim(row | {"fd_real": 2.7e4}).holds  # noise: FD beyond real's
  assert verdict.clean_claim({k: v for k, v in row.items() if "probe" not in k}).holds
  assert verdict.clean_claim({"generation": 1, "fd_real": 1.0}) is None
  rows = [row | {"generation": 1, "train_entropy": 340, "gen_score": 800, "heldout_score": 1000}]
  assert any(c.text.startswith("generation 1's samples are as clean") and c.holds
             for c in verdict.collapse_claims(rows))
