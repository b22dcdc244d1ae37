"""The source papers' claims as sweeps on the digits setting (scripts/sweep.py --claim).

  python scripts/sweep.py --claim section3 --workdir runs/claim_section3 --jobs 2
  python scripts/sweep.py --claim reservoir --workdir runs/claim_reservoir --jobs 2
  python scripts/sweep.py --claim accumulate --workdir runs/claim_accumulate --jobs 2
  python scripts/sweep.py --claim selection --workdir runs/claim_selection --jobs 2
  python scripts/sweep.py --claim wishart --workdir runs/claim_wishart --jobs 2

Each entry: the config, the grid, the seeds, extra overrides; `collapse_jax/study/claims.py` holds
the checker that decides the claim on the finished runs, with intervals over the seeds.
Any config override after the command goes to every run of the sweep. The digits sweeps
other than section3 (which sweeps N) pin N = 64, the default they were measured at before the
default moved to N = 160 (README), so their documented results stay what the command runs.
"""

N64 = "--config.loop.n_train=64"

CLAIMS = {
    # Shi et al. section 3: smaller N collapses faster; r(entropy, log gen score) = 0.91.
    "section3": dict(config="configs/digits.py", seeds=3,
                     grid=["loop.n_train=64,128,256,512"], overrides=[]),
    # ERBP: a fraction lambda of fresh real data each generation floors the entropy.
    "reservoir": dict(config="configs/digits.py", seeds=3,
                      grid=["loop.fresh_fraction=0.0,0.1,0.25,0.5"],
                      overrides=["--config.loop.paradigm=fresh", N64]),
    # Gerstgrasser et al. 2024: accumulate keeps the score and FD bounded; replace does not.
    "accumulate": dict(config="configs/digits.py", seeds=3,
                       grid=["loop.paradigm=replace,accumulate"], overrides=[N64]),
    # Selection against vanilla and against random selection from the same 2N pool.
    "selection": dict(config="configs/digits.py", seeds=3,
                      grid=["loop.selection=none,random,greedy,threshold"],
                      overrides=["--config.loop.pool_factor=2", N64]),
    # The loop against a law: the fitted Gaussian's entropy (collapse_jax.study.theory), n = 100.
    "wishart": dict(config="configs/theory.py:gaussian", seeds=50,
                    grid=["loop.n_train=100"],
                    overrides=["--config.loop.generations=8", "--config.loop.pictures=False"]),
}
