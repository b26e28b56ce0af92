"""Fine-tuning the core's matchers on cross-season pairs (builds on :mod:`georef`; never imported by it)."""
