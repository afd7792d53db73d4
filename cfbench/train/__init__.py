"""Training. For now the minimal CPU path that trains the bundled demo model (minimal.py); full stages: issue #7."""
