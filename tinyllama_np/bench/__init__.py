"""`tinyllama-np bench`: the benchmark suites, and the PyTorch reference they compare with."""
