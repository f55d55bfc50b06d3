"""Profiles: the saved verdict of a run, the recommendation maths, import and export.

Pure functions and frozen dataclasses; nothing here imports Textual or runs a process.
"""

from profiles.importers import ImportedRun, ImportProblem, import_files, read_file
from profiles.model import (BuildRecord, HostFingerprint, ModelFacts, Profile, ProfileResult,
                            host_fingerprint, model_identity, profile_from_import, profile_from_journal)
from profiles.store import ProfileEntry, ProfileError, ProfileStore
from profiles.verdict import ClassVerdict, Recommendation, VerdictSettings, recommend

__all__ = [
    "BuildRecord", "ClassVerdict", "HostFingerprint", "ImportProblem", "ImportedRun", "ModelFacts",
    "Profile", "ProfileEntry", "ProfileError", "ProfileResult", "ProfileStore", "Recommendation",
    "VerdictSettings", "host_fingerprint", "import_files", "model_identity", "profile_from_import",
    "profile_from_journal", "read_file", "recommend",
]
