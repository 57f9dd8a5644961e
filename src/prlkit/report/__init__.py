"""Figures and reports for people: training curves, ROC/PR plots, lesion galleries."""
