"""Evaluation: participant-level folds, lesion metrics, statistical tests and calibration.

`folds` (cross-validation splits), `metrics` (AUCs, F1 threshold, confusion metrics, curves),
`stats` (DeLong, McNemar, Pearson CI, subject-level counts), `calibration` (prior shift,
Platt, temperature, Brier, reliability). Pure functions over arrays and tables; the CLI wires them.
"""
