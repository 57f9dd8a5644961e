"""Options shared by several sub-commands: profile, config file, cache, device, progress bars, synthetic cohorts."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from prlkit.config import PHASE_SIGNS, PROFILES, SUSCEPTIBILITY_INPUTS, VAL_SPLITS, Config, get_profile, load_config
from prlkit.data.plausibility import QSM_UNITS
from prlkit.errors import PrlkitError
from prlkit.synth.profiles import PROFILES as SYNTH_PROFILES

if TYPE_CHECKING:
    from prlkit.data.bids import SessionFiles


def add_config_options(parser: argparse.ArgumentParser, default_profile: str = "paper") -> None:
    """`--profile NAME`, `--config FILE` (layered on the profile) and `--qsm-unit` (recorded in the config)."""
    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help=f"named settings (default {default_profile}): paper = the authors' released network and "
                             "recipe (64^3 patches, 2.2 M parameters, 200+200 epochs: a GPU network); quick = a "
                             "smaller, faster CPU variant (BatchNorm, base width 8, stride-2 stem, 24^3 patches)")
    parser.add_argument("--config", metavar="FILE", help="YAML/JSON config file: overrides the fields it names, on "
                        "top of its own `profile:` key or else --profile")
    parser.set_defaults(default_profile=default_profile)
    add_qsm_unit_option(parser, default=None)
    add_susceptibility_options(parser)


def add_susceptibility_options(parser: argparse.ArgumentParser, choose_input: bool = True) -> None:
    """`--susceptibility {qsm,phase}` (the image the run reads; commands that run a model read what it was trained
    on, `choose_input=False`) and `--phase-sign` (recorded in the config)."""
    if choose_input:
        parser.add_argument("--susceptibility", choices=SUSCEPTIBILITY_INPUTS, help="the susceptibility image "
                            "to read (default: the config's, qsm): qsm = _Chimap (ppm); phase = unwrapped, "
                            "high-pass-filtered _part-phase_T2starw (radians), converted to a field shift in ppm "
                            "with EchoTime and MagneticFieldStrength of its JSON sidecar")
    default = "the config's" if choose_input else "the model's setting"
    parser.add_argument("--phase-sign", choices=PHASE_SIGNS, help="phase input: the sign paramagnetic tissue has "
                        f"(default: {default}, auto = decided per session from how the venous phase depends on "
                        "vein orientation; give it where a scan has too few veins)")


def add_qsm_unit_option(parser: argparse.ArgumentParser, default: str | None = "ppm") -> None:
    """`--qsm-unit {ppm,ppb}`: the unit of the input QSM files (ppb is divided by 1000 when read)."""
    default_text = "ppm" if default else "the config's qsm_unit: ppm unless set"
    parser.add_argument("--qsm-unit", choices=sorted(QSM_UNITS), default=default,
                        help=f"unit of the QSM files (default {default_text}): ppb is divided by 1000 when read")


def config_from_args(args: argparse.Namespace) -> Config:
    """The config the options ask for: profile, config file, then --qsm-unit, --susceptibility, --phase-sign."""
    if args.config:
        config = load_config(args.config, profile=args.profile, default_profile=args.default_profile)
    else:
        config = get_profile(args.profile or args.default_profile)
    options = {name: getattr(args, name, None) for name in ("qsm_unit", "susceptibility", "phase_sign")}
    return dataclasses.replace(config, **{name: value for name, value in options.items() if value})


def discovered(dataset: str | Path, config: Config):
    """The cohort of a BIDS folder or manifest, read as `config` says (QSM unit, susceptibility image, phase sign)."""
    from prlkit.data.bids import discover_cohort

    return discover_cohort(dataset, config.qsm_unit, config.susceptibility, config.phase_sign)


def qsm_unit(args: argparse.Namespace) -> str:
    """The unit of the input QSM files: --qsm-unit, else (commands with a config) the config's."""
    return args.qsm_unit or config_from_args(args).qsm_unit


def with_split_overrides(config: Config, **overrides) -> Config:
    """Apply command-line split options (None = keep); `seed` seeds the split and both training stages."""
    overrides = {key: value for key, value in overrides.items() if value is not None}
    split = dataclasses.replace(config.split, **overrides)
    return dataclasses.replace(
        config,
        split=split,
        pretrain=dataclasses.replace(config.pretrain, seed=split.seed),
        finetune=dataclasses.replace(config.finetune, seed=split.seed),
        segment=dataclasses.replace(config.segment, train=dataclasses.replace(config.segment.train, seed=split.seed)),
    )


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """`--cache-dir` (patch cache), `--device` and `--no-progress`."""
    parser.add_argument("--cache-dir", type=Path, help="patch cache folder (default $PRLKIT_CACHE or ~/.cache/prlkit)")
    add_device_option(parser)
    add_progress_option(parser)


def add_val_split_option(parser: argparse.ArgumentParser, inside: str = "") -> None:
    """`--val-split`: how the development data are split into training and validation (`split.by`)."""
    parser.add_argument("--val-split", choices=VAL_SPLITS, help=f"validation split{inside}: by participant (the "
                        "authors' code, default), participant_stratified (whole participants holding about the "
                        "validation fraction of the Rim+ lesions, prlkit's choice) or lesion (the paper text)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """`--device`; `prlkit.cli.main` checks it before the command runs, so a bad one fails before any work."""
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N; "
                        "a device this machine lacks is an error")


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """`--no-progress`: no progress bars (log files, batch jobs)."""
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_synth_profile_option(parser: argparse.ArgumentParser) -> None:
    """`--synth-profile NAME`: the generator settings of a synthetic cohort (`prlkit simulate`, `prlkit demo`)."""
    parser.add_argument("--synth-profile", choices=sorted(SYNTH_PROFILES), default="default",
                        help="synthetic cohort generator (default \"default\"): default = 112x128x112 grid, 8-30 "
                             "lesions; noisy = the default grid and lesions at a noisier site (2x QSM field noise, "
                             "lower TKD threshold: stronger streaking, 1.6x medullary veins, more vein and streak "
                             "confounders on Rim- lesions); randomised = every subject draws its own rim, lesion-size, "
                             "vein and noise settings far beyond default and noisy, truth labels (pretraining data); "
                             "core_balanced, randomised_core_balanced = default, randomised with Rim+ and plain Rim- "
                             "cores drawn alike (no dark-core cue); tiny = 64x72x64, few lesions (tests)")


class DeprecatedAlias(argparse.Action):
    """An old option name kept for one release: stores into the new option's dest and prints one warning line."""

    def __init__(self, option_strings: list[str], dest: str, replacement: str, **kwargs) -> None:
        self.replacement = replacement
        kwargs.setdefault("default", argparse.SUPPRESS)  # the new option's default stands unless the alias is given
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values,
                 option_string: str | None = None) -> None:
        print(f"prlkit: warning: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def checked_cohort(dataset: str | Path, config: Config | None = None):
    """The cohort of a BIDS folder or manifest, read as `config` says (default: QSM in ppm); its first
    cohort-level problem is the error."""
    cohort = discovered(dataset, config or Config())
    if cohort.problems:
        raise cohort_error(cohort.problems)
    return cohort


def require_empty_output(out: Path, resume: bool) -> None:
    """Refuse to train into a folder that already holds something, unless the run is resumed there;
    refuse to resume in a folder that does not exist or whose run finished (its checkpoints are gone)."""
    if resume and not out.is_dir():
        raise PrlkitError(f"{out}: --resume: no such folder, so no run to continue; check --out, or drop --resume "
                          "to start a new run")
    if resume and (out / "model.json").is_file():
        raise PrlkitError(f"{out}: --resume: this run finished (model.json is there), nothing to continue; "
                          "choose another --out to train again")
    if out.exists() and any(out.iterdir()) and not resume:
        raise PrlkitError(f"{out}: output folder is not empty; use --resume to continue a run or choose another --out")


def load_patch_set(args: argparse.Namespace, config: Config):
    """The cohort's patch set (from the cache when its settings and files are unchanged)."""
    from prlkit.data.cache import build_patch_set

    return build_patch_set(checked_cohort(args.dataset, config), config, cache_dir=args.cache_dir,
                           progress=not args.no_progress)


def cohort_error(problems: list[str]) -> Exception:
    """The first cohort-level problem as the error, with a pointer to `prlkit validate` for the rest."""
    more = f" (and {len(problems) - 1} more problem(s): run `prlkit validate`)" if len(problems) > 1 else ""
    return PrlkitError(problems[0] + more)


def read_as_trained(sessions: list[SessionFiles], config: Config, phase_sign: str | None,
                    single_session: bool) -> list[SessionFiles]:
    """The sessions read as the model was trained: its susceptibility image (QSM or phase) and, for phase,
    `--phase-sign` or else the model's `phase_sign` setting."""
    if config.susceptibility == "qsm":
        return sessions
    if single_session:
        raise PrlkitError("the model reads phase: give a dataset (single-session mode reads --qsm)")
    sign = phase_sign or config.phase_sign
    return [dataclasses.replace(session, susceptibility="phase", phase_sign=sign) for session in sessions]
