"""Comparison methods: MONAI ResNet-18, QSMRim-Net, RimNet, Deep-PRL (networks) and APRL (random forest).

Each network takes the lesion patch (B, C, S, S, S) in prlkit's channel order [QSM, FLAIR, mask]
and returns one logit per lesion; its frozen config dataclass holds the paper/released-code switches.
`QSMRimNetClassifier` and `APRLModel` (`takes_features = True`) also take the lesion features
(B, F) of `prlkit.data.features`: forward(x, features).
"""
