"""Check every session of a cohort and summarise it: what `prlkit validate` reports."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pandas as pd

from prlkit.config import LesionConfig
from prlkit.data.bids import Cohort
from prlkit.data.session import load_session
from prlkit.errors import PrlkitError

SESSION_COLUMNS = [
    "participant_id", "session_id", "lesions", "included", "rim_pos", "rim_neg",
    "unlabelled", "too_small", "at_border", "phase", "phase_sign", "status",
]


@dataclass
class ValidationReport:
    """Per-session counts, cohort-level problems (errors) and warnings."""

    sessions: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def totals(self) -> dict[str, int]:
        """Cohort totals: subjects, sessions, lesions, Rim+/Rim- (included lesions), excluded, problems."""
        s = self.sessions
        return {
            "subjects": int(s["participant_id"].nunique()),
            "sessions": len(s),
            "lesions": int(s["lesions"].sum()),
            "included": int(s["included"].sum()),
            "rim_pos": int(s["rim_pos"].sum()),
            "rim_neg": int(s["rim_neg"].sum()),
            "unlabelled": int(s["unlabelled"].sum()),
            "excluded_too_small": int(s["too_small"].sum()),
            "at_border": int(s["at_border"].sum()),
            "sessions_with_phase": int(s["phase"].sum()),
            "sessions_with_problems": int((s["status"] != "ok").sum()),
            "problems": len(self.problems),
            "warnings": len(self.warnings),
        }


def validate_cohort(cohort: Cohort, config: LesionConfig) -> ValidationReport:
    """Load every session, collecting (not raising) problems so the user sees all of them at once."""
    rows, problems, seen_warnings = [], list(cohort.problems), []
    for session in cohort.sessions:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                data = load_session(session, config)
                lesions, sign, status = data.lesions, data.reading.get("phase_sign", ""), "ok"
            except PrlkitError as error:
                lesions, sign, status = None, "", "error"
                problems.append(str(error))
        seen_warnings += [str(w.message) for w in caught]
        rows.append(_session_row(session.participant_id, session.session_id, lesions, status)
                    | {"phase": int(session.phase is not None), "phase_sign": sign})
    return ValidationReport(sessions=pd.DataFrame(rows, columns=SESSION_COLUMNS), problems=problems,
                            warnings=seen_warnings)


def _session_row(participant: str, session: str | None, lesions: pd.DataFrame | None, status: str) -> dict:
    row = {"participant_id": participant, "session_id": session or "", "status": status}
    if lesions is None:
        return row | {column: 0 for column in SESSION_COLUMNS if column not in row}
    included = lesions[lesions["excluded"] == ""]
    return row | {
        "lesions": len(lesions),
        "included": len(included),
        "rim_pos": int((included["rim"] == 1).sum()),
        "rim_neg": int((included["rim"] == 0).sum()),
        "unlabelled": int(included["rim"].isna().sum()),
        "too_small": int((lesions["excluded"] == "too_small").sum()),
        "at_border": int(lesions["touches_border"].sum()),
    }
