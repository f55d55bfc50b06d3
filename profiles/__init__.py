"""Profiles: the saved verdict of a run, the recommendation maths, import and export.

Pure functions and frozen dataclasses; nothing here imports Textual or runs a process.
"""

from profiles.importers import ImportedRun, ImportProblem, import_files, read_file
from profiles.model import (
                            BuildRecord,
                            HostFingerprint,
                            Profile,
                            host_fingerprint,
                            model_identity,
                            profile_from_import,
                            profile_from_journal,
)
from profiles.records import (
                            FailureRecord,
                            ModelFacts,
                            ProfileResult,
                            RunRecords,
                            records_from_events,
)
from profiles.store import ProfileEntry, ProfileError, ProfileStore
from profiles.verdict import (
                            ClassVerdict,
                            Recommendation,
                            VerdictSettings,
                            recommend,
                            recommend_run,
)

__all__ = [
                            "BuildRecord",
                            "ClassVerdict",
                            "FailureRecord",
                            "HostFingerprint",
                            "ImportProblem",
                            "ImportedRun",
                            "ModelFacts",
                            "Profile",
                            "ProfileEntry",
                            "ProfileError",
                            "ProfileResult",
                            "ProfileStore",
                            "Recommendation",
                            "RunRecords",
                            "VerdictSettings",
                            "host_fingerprint",
                            "import_files",
                            "model_identity",
                            "profile_from_import",
                            "profile_from_journal",
                            "read_file",
                            "recommend",
                            "recommend_run",
                            "records_from_events",
]
