"""Training. For now the minimal CPU path that trains the bundled demo model (minimal.py); the full stages are issue #7."""
