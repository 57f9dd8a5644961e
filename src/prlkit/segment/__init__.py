"""Whole-brain PRL segmentation (El Yamani et al., MIDL 2025): the patch-free alternative mode.

A 3D UNet labels every voxel background / non-PRL lesion / PRL lesion; annotated lesions then get
a PRL score from the voxel probabilities, so both modes meet in one lesion-level comparison.
"""
