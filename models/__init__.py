"""MedSegLatDiff and baselines as plain PyTorch/MONAI modules: no Ray, Hydra or file I/O here."""
