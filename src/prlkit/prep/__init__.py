"""Bring a real cohort onto one grid per session: rigid registration, optional N4, resampling, QC.

Needs the optional extra `prlkit[registration]` (SimpleITK); it is imported only when used.
"""
