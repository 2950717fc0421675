"""Metrics over sample ensembles: segmentation, calibration, distribution and uncertainty quality."""
