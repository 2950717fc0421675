"""Dataset readers (one module per on-disk layout), the `prepare` DVC stage and loaders."""
