"""Evaluation: clustering metrics, the evaluation stages, figures and calibration."""
