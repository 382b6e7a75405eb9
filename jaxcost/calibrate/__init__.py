"""Calibration: benchmark rows to arrays, residuals, the optax fit, cross-validation,
bootstrap ensembles, error tables and predictions of measured runs.
"""
