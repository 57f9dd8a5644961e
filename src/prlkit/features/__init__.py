"""Hand-crafted lesion features for the radiomics baselines (APRL, QSMRim-Net's radiomics branch)."""
