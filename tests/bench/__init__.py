"""Tests of ``altws bench``: it works, against a URL and locally; never timing thresholds."""
