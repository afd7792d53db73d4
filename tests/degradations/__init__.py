"""Tests of the standalone degradations package."""
