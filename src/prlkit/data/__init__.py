"""Cohort input: BIDS discovery, image checks, lesion instances and lesion-centred patches."""
