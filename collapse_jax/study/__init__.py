"""Experiments over many runs of the loop: sweeps and their launcher, seed statistics, the
source papers' claims and their verdicts, comparisons, and the closed-form laws of collapse."""
