"""Phase input: ppm conversion, sidecars, the guardrails and the sign convention, on 64³ synthetic volumes.

The vein volumes come from the dipole forward model (`forward_field`, B0 along the last axis): cylinders
of Δχ = 0.3 ppm, radius 1.2-1.5 voxels, along and across B0 and oblique, in an ellipsoidal brain.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from prlkit.data import phase
from prlkit.data.bids import PrlkitWarning
from prlkit.data.phase import (
    PhaseAcquisition,
    check_phase_image,
    detect_phase_sign,
    low_frequency_fraction,
    phase_to_ppm,
    ppm_to_phase,
    read_phase_sidecar,
    vessel_axes,
    wrap_jump_fraction,
)
from prlkit.errors import InputFileError, PrlkitError
from prlkit.synth.qsm import forward_field

N = 64
CENTRE = (N - 1) / 2
TE_S, B0_T = 0.02, 3.0
NOISE_RAD = 0.1
VEINS = [  # (a point on the axis, direction, radius in voxels)
    ((CENTRE - 10, CENTRE - 8, CENTRE), (0, 0, 1), 1.2),
    ((CENTRE + 9, CENTRE + 6, CENTRE), (0, 0, 1), 1.5),
    ((CENTRE, CENTRE - 12, CENTRE + 8), (1, 0, 0), 1.2),
    ((CENTRE, CENTRE + 12, CENTRE - 9), (0, 1, 0), 1.5),
    ((CENTRE, CENTRE, CENTRE), (1, 0, 1), 1.2),
    ((CENTRE + 5, CENTRE - 5, CENTRE), (0, 1, 1), 1.5),
    ((CENTRE - 6, CENTRE + 4, CENTRE), (1, 1, 2), 1.2),
    ((CENTRE + 3, CENTRE + 3, CENTRE + 3), (2, 1, -1), 1.5),
]
PATH = "sub-01_part-phase_T2starw.nii.gz"


def grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel coordinates centred on the volume."""
    axis = np.arange(N) - CENTRE
    return tuple(np.meshgrid(axis, axis, axis, indexing="ij"))


def cylinder(point, direction, radius: float) -> np.ndarray:
    """Voxels within `radius` of the line through `point` along `direction`."""
    coordinates = np.indices((N, N, N)).reshape(3, -1).T - np.asarray(point, dtype=float)
    unit = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    across = coordinates - np.outer(coordinates @ unit, unit)
    return (np.linalg.norm(across, axis=1) <= radius).reshape(N, N, N)


@pytest.fixture(scope="module")
def brain() -> np.ndarray:
    x, y, z = grid()
    return (x / 28) ** 2 + (y / 25) ** 2 + (z / 26) ** 2 <= 1


def vein_phase(brain: np.ndarray, veins, sign: int, seed: int = 0) -> np.ndarray:
    """Phase (rad) of the veins' local field at 3 T, TE 20 ms, plus Gaussian noise, zero outside the brain."""
    chi = np.zeros(brain.shape, dtype=np.float32)
    for point, direction, radius in veins:
        chi[cylinder(point, direction, radius) & brain] = 0.3
    noise = NOISE_RAD * np.random.default_rng(seed).standard_normal(brain.shape)
    return np.where(brain, ppm_to_phase(forward_field(chi), TE_S, B0_T, sign) + noise, 0.0).astype(np.float32)


@pytest.fixture(scope="module")
def veins(brain) -> np.ndarray:
    """Unwrapped, filtered phase of the eight veins, paramagnetic positive."""
    return vein_phase(brain, VEINS, sign=1)


@pytest.fixture(scope="module")
def background(brain) -> np.ndarray:
    """A smooth background field (gradient, quadratic and cross terms) of unit RMS in the brain."""
    x, y, z = grid()
    field = x / 28 + 0.5 * (y / 25) ** 2 - 0.7 * (z / 26) ** 2 + 0.3 * x * z / 700
    return field / np.sqrt(np.mean(field[brain] ** 2))


def check_quietly(data: np.ndarray, brain: np.ndarray) -> list[str]:
    """Run check_phase_image; the PrlkitWarning messages it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_phase_image(data, brain, PATH)
    return [str(w.message) for w in caught if issubclass(w.category, PrlkitWarning)]


def refusal(data: np.ndarray, brain: np.ndarray) -> str:
    with pytest.raises(InputFileError) as error:
        check_phase_image(data, brain, PATH)
    message = str(error.value)
    assert message.startswith(PATH) and "\n" not in message
    return message


# ---- conversion and sidecars ----

def test_phase_to_ppm_known_value_and_round_trip():
    # 0.1 ppm at 3 T and 20 ms: 2π · 42.577 MHz/T · 3 T · 0.02 s · 1e-7 = 1.6051 rad
    assert ppm_to_phase(np.array([0.1]), 0.02, 3.0, 1)[0] == pytest.approx(1.6051, abs=1e-4)
    assert ppm_to_phase(np.array([0.1]), 0.02, 3.0, -1)[0] == pytest.approx(-1.6051, abs=1e-4)
    field = np.random.default_rng(0).normal(0, 0.05, (4, 5, 6)).astype(np.float32)
    for te, b0, sign in [(0.005, 1.5, 1), (0.02, 3.0, -1), (0.04, 7.0, 1)]:
        np.testing.assert_allclose(phase_to_ppm(ppm_to_phase(field, te, b0, sign), te, b0, sign), field, rtol=1e-5)
    assert phase_to_ppm(np.array([1.6051]), 0.02, 3.0, -1)[0] == pytest.approx(-0.1, abs=1e-5)


@pytest.mark.parametrize("arguments", [(0.0, 3.0, 1), (0.02, -3.0, 1), (0.02, 3.0, 0)])
def test_phase_to_ppm_refuses_impossible_arguments(arguments):
    with pytest.raises(ValueError):
        phase_to_ppm(np.zeros(3), *arguments)


def test_sidecar_present_missing_fields_and_absent(tmp_path):
    image = tmp_path / PATH
    assert read_phase_sidecar(image) == PhaseAcquisition(None, None)  # no sidecar at all
    sidecar = tmp_path / "sub-01_part-phase_T2starw.json"
    sidecar.write_text(json.dumps({"EchoTime": 0.02, "MagneticFieldStrength": 3, "Manufacturer": "X"}))
    assert read_phase_sidecar(image) == PhaseAcquisition(0.02, 3.0)
    assert read_phase_sidecar(tmp_path / "sub-01_part-phase_T2starw.nii") == PhaseAcquisition(0.02, 3.0)
    sidecar.write_text(json.dumps({"EchoTime": 0.025}))
    assert read_phase_sidecar(image) == PhaseAcquisition(0.025, None)
    sidecar.write_text(json.dumps({"MagneticFieldStrength": 7}))
    assert read_phase_sidecar(image) == PhaseAcquisition(None, 7.0)


@pytest.mark.parametrize("content, expected", [
    ("{not json", "cannot be read as JSON"),
    ("[0.02, 3]", "not a JSON object"),
    ('{"EchoTime": 0}', "EchoTime must be a positive number"),
    ('{"EchoTime": -0.02}', "EchoTime must be a positive number"),
    ('{"EchoTime": "20ms"}', "EchoTime must be a positive number"),
    ('{"MagneticFieldStrength": true}', "MagneticFieldStrength must be a positive number"),
    ('{"MagneticFieldStrength": -3}', "MagneticFieldStrength must be a positive number"),
    ('{"EchoTime": 20}', "BIDS wants seconds"),
])
def test_bad_sidecar_is_one_line_naming_it(tmp_path, content, expected):
    sidecar = tmp_path / "sub-01_part-phase_T2starw.json"
    sidecar.write_text(content)
    with pytest.raises(InputFileError) as error:
        read_phase_sidecar(tmp_path / PATH)
    assert str(error.value).startswith(str(sidecar)) and expected in str(error.value)
    assert "\n" not in str(error.value)


def test_echo_time_just_under_one_second_is_accepted(tmp_path):
    (tmp_path / "sub-01_part-phase_T2starw.json").write_text('{"EchoTime": 0.999}')
    assert read_phase_sidecar(tmp_path / PATH).echo_time_s == 0.999


# ---- guardrails ----

def test_filtered_vein_phase_passes_without_warning(veins, brain):
    assert check_quietly(veins, brain) == []


def test_wrapped_phase_is_refused_with_a_pointer_to_unwrapping(veins, brain, background):
    raw = np.where(brain, np.angle(np.exp(1j * (veins + 5 * background))), 0)
    message = refusal(raw, brain)
    assert "raw wrapped phase" in message and "unwrap and high-pass filter it first" in message
    assert "ROMEO" in message
    scaled = np.where(brain, np.angle(np.exp(1j * 2 * veins)), 0)  # veins alone, scaled until they wrap
    assert "raw wrapped phase" in refusal(scaled, brain)


def checkerboard(brain: np.ndarray, size: int, amplitude: float) -> np.ndarray:
    """Noise with a size³ cube of ±amplitude alternating voxels in the middle (jumps between neighbours)."""
    data = 0.05 * np.random.default_rng(3).standard_normal(brain.shape)
    cube = tuple(slice(N // 2, N // 2 + size) for _ in range(3))
    data[cube] = amplitude * (-1.0) ** np.indices((size,) * 3).sum(axis=0)
    return np.where(brain, data, 0.0)


def test_wrap_jump_fraction_threshold_both_sides(brain):
    few, many = checkerboard(brain, 2, math.pi - 0.01), checkerboard(brain, 6, math.pi - 0.01)
    assert wrap_jump_fraction(few, brain) < phase.WRAP_JUMP_FRACTION < wrap_jump_fraction(many, brain)
    check_quietly(few, brain)
    assert "raw wrapped phase" in refusal(many, brain)


@pytest.mark.parametrize("amplitude, wrapped", [
    (math.pi * (1 - phase.WRAP_RANGE_TOLERANCE) + 0.01, True),  # inside the tolerance below π
    (math.pi * (1 + phase.WRAP_RANGE_TOLERANCE) - 0.01, True),  # inside the tolerance above π
    (math.pi * (1 - phase.WRAP_RANGE_TOLERANCE) - 0.01, False),  # never reaches π: not raw phase
    (math.pi * (1 + phase.WRAP_RANGE_TOLERANCE) + 0.01, False),  # goes beyond π: unwrapped
])
def test_wrap_range_tolerance_both_sides(brain, amplitude, wrapped):
    data = checkerboard(brain, 6, amplitude)
    if wrapped:
        refusal(data, brain)
    else:
        check_quietly(data, brain)


def test_magnitude_and_swi_are_refused(brain):
    rng = np.random.default_rng(4)
    magnitude = np.where(brain, rng.normal(600, 80, brain.shape).clip(0), 0)
    assert "magnitude or SWI" in refusal(magnitude, brain)
    normalised = np.where(brain, rng.uniform(0.2, 1.0, brain.shape), 0)  # an intensity image scaled to [0, 1]
    assert "magnitude or SWI" in refusal(normalised, brain)


@pytest.mark.parametrize("negative_share, refused", [(0.005, True), (0.02, False)])
def test_magnitude_threshold_both_sides(brain, negative_share, refused):
    noise = 0.1 * np.random.default_rng(5).standard_normal(brain.shape)
    shifted = noise - np.quantile(noise[brain], negative_share)
    data = np.where(brain, shifted, 0)
    assert np.mean(data[brain] < 0) == pytest.approx(negative_share, abs=1e-3)
    if refused:
        assert negative_share < phase.MAGNITUDE_MAX_NEGATIVE
        refusal(data, brain)
    else:
        assert negative_share > phase.MAGNITUDE_MAX_NEGATIVE
        check_quietly(data, brain)  # a phase with an offset: only the background warning


@pytest.mark.parametrize("p99, refused", [(0.8 * phase.PHASE_MAX_P99_RAD, False),
                                          (1.2 * phase.PHASE_MAX_P99_RAD, True)])
def test_scanner_units_threshold_both_sides(brain, p99, refused):
    noise = np.random.default_rng(6).standard_normal(brain.shape)
    data = np.where(brain, noise * p99 / np.percentile(np.abs(noise[brain]), 99), 0)
    if refused:
        assert "scanner units" in refusal(data, brain)
    else:
        check_quietly(data, brain)


def test_unfiltered_phase_warns_on_both_sides_of_the_threshold(veins, brain, background):
    filtered = np.where(brain, veins + 0.2 * background, 0)
    unfiltered = np.where(brain, veins + 0.4 * background, 0)
    assert low_frequency_fraction(filtered, brain) < phase.LOWPASS_MAX_ENERGY_FRACTION
    assert low_frequency_fraction(unfiltered, brain) > phase.LOWPASS_MAX_ENERGY_FRACTION
    assert check_quietly(filtered, brain) == []
    messages = check_quietly(unfiltered, brain)
    assert len(messages) == 1 and messages[0].startswith(PATH) and "high-pass filtered" in messages[0]


def test_empty_brain_is_refused(brain):
    assert "no finite phase value" in refusal(np.full(brain.shape, np.nan), brain)


# ---- sign convention ----

@pytest.mark.parametrize("sign", [1, -1])
def test_sign_detected_for_both_conventions(brain, sign):
    result = detect_phase_sign(vein_phase(brain, VEINS, sign), brain)
    assert result.sign == sign
    assert result.n_vessel_voxels >= phase.MIN_VESSEL_VOXELS
    assert np.sign(result.slope) == np.sign(result.t_statistic) == sign
    assert result.p_value < phase.SIGN_MAX_P_VALUE


def test_b0_direction_is_used(veins, brain):
    """B0 antiparallel reads the same; the veins read with B0 along the first axis show no orientation signal."""
    assert detect_phase_sign(veins, brain, b0_direction=(0, 0, -1)) == detect_phase_sign(veins, brain)
    with pytest.raises(PrlkitError, match="does not depend on their orientation"):
        detect_phase_sign(veins, brain, b0_direction=(1, 0, 0))


@pytest.mark.parametrize("content", ["noise", "blobs"])
def test_no_veins_gives_up(brain, content):
    rng = np.random.default_rng(7)
    data = NOISE_RAD * rng.standard_normal(brain.shape)
    if content == "blobs":
        blobs = ndimage.gaussian_filter(rng.standard_normal(brain.shape), 3)
        data += 0.3 * blobs / blobs[brain].std()
    with pytest.raises(PrlkitError) as error:
        detect_phase_sign(np.where(brain, data, 0), brain)
    message = str(error.value)
    assert "cannot tell the phase sign convention from veins: only" in message
    assert "vessel voxels in the field of view" in message and "--phase-sign positive|negative" in message
    assert "\n" not in message


def test_veins_at_the_magic_angle_give_up(brain):
    """Veins at 54.7° to B0 carry no field inside: many vessel voxels, no orientation signal."""
    tilt = (1, 0, 1 / math.tan(math.radians(54.7)))
    at_magic_angle = [(point, tilt, 1.3) for point, _, _ in VEINS[:5]]
    with pytest.raises(PrlkitError, match=r"does not depend on their orientation .* --phase-sign"):
        detect_phase_sign(vein_phase(brain, at_magic_angle, 1), brain)


def test_vessel_count_threshold_both_sides(veins, brain, monkeypatch):
    n = detect_phase_sign(veins, brain).n_vessel_voxels
    monkeypatch.setattr(phase, "MIN_VESSEL_VOXELS", n)
    assert detect_phase_sign(veins, brain).sign == 1
    monkeypatch.setattr(phase, "MIN_VESSEL_VOXELS", n + 1)
    with pytest.raises(PrlkitError, match=f"only {n} vessel voxels"):
        detect_phase_sign(veins, brain)


def test_significance_threshold_both_sides(veins, brain, monkeypatch):
    p = detect_phase_sign(veins, brain).p_value
    monkeypatch.setattr(phase, "SIGN_MAX_P_VALUE", 2 * p)
    assert detect_phase_sign(veins, brain).sign == 1
    monkeypatch.setattr(phase, "SIGN_MAX_P_VALUE", p / 2)
    with pytest.raises(PrlkitError, match="does not depend on their orientation"):
        detect_phase_sign(veins, brain)


def test_vessel_axes_follow_a_bright_and_a_dark_tube(brain):
    direction = np.array([1.0, 2.0, 2.0]) / 3
    tube = ndimage.gaussian_filter(cylinder((CENTRE,) * 3, direction, 1.5).astype(float), 0.7)
    noise = 0.05 * np.random.default_rng(8).standard_normal(brain.shape)
    for polarity in (1, -1):
        vessels, axes = vessel_axes(np.where(brain, polarity * tube + noise, 0), brain)
        assert vessels.sum() > 100
        assert np.median(np.abs(axes @ direction)) > 0.99


def test_sharp_blobs_carry_no_orientation_signal(brain):
    """The flanks of a sharp blob pass the tube test (as in Frangi's filter), pointing radially in every
    direction alike, so blobs of either polarity leave the slope insignificant."""
    rng = np.random.default_rng(9)
    x, y, z = grid()
    data = NOISE_RAD * rng.standard_normal(brain.shape)
    for centre in rng.uniform(-12, 12, (6, 3)):
        squared = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
        data += rng.choice([-1, 1]) * rng.uniform(0.5, 1.5) * np.exp(-squared / (2 * 2.0**2))
    assert vessel_axes(np.where(brain, data, 0), brain)[0].sum() >= phase.MIN_VESSEL_VOXELS
    with pytest.raises(PrlkitError, match="does not depend on their orientation"):
        detect_phase_sign(np.where(brain, data, 0), brain)


def test_nan_voxels_in_the_brain_are_left_out(veins, brain):
    holed = veins.copy()
    holed[tuple(np.argwhere(brain)[::500].T)] = np.nan
    result = detect_phase_sign(holed, brain)
    assert result.sign == 1 and math.isfinite(result.slope)
    assert check_quietly(holed, brain) == []
