"""Whole-volume inference: MONAI sliding windows with configurable overlap and blending."""

from __future__ import annotations

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from scipy import ndimage
from torch import nn

from prlkit.config import SegmentConfig
from prlkit.segment.volumes import BACKGROUND, CLASS_NAMES


def lesion_region(instances: np.ndarray, margin: int) -> tuple[slice, slice, slice] | None:
    """Bounding box of all lesion voxels grown by `margin` voxels (clipped); None without lesions."""
    boxes = ndimage.find_objects((instances > 0).astype(np.int8))
    if not boxes:
        return None
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(boxes[0], instances.shape))


def class_probabilities(net: nn.Module, image: np.ndarray, config: SegmentConfig, device: torch.device,
                        region: tuple[slice, slice, slice] | None = None) -> np.ndarray:
    """Softmax probabilities (3, X, Y, Z), float32, on the grid of `image` (C, X, Y, Z).

    With `region`, only that box is segmented (windows still of `patch_size`) and every voxel
    outside it is background with probability 1: validation uses the lesions' box to save time.
    """
    box = (slice(None), *(region or (slice(None),) * 3))
    x = torch.from_numpy(np.ascontiguousarray(image[box]))[None].to(device, torch.float32)
    net.eval()
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = sliding_window_inference(x, (config.patch_size,) * 3, config.sw_batch_size, net,
                                          overlap=config.overlap, mode=config.blend)
    probabilities = torch.softmax(logits.float(), dim=1)[0].cpu().numpy()
    if region is None:
        return probabilities
    full = np.zeros((len(CLASS_NAMES), *image.shape[1:]), dtype=np.float32)
    full[BACKGROUND] = 1.0
    full[box] = probabilities
    return full
