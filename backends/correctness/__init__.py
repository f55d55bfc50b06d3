"""The correctness gate: catch a build that is fast but wrong (see ``run.py``).

    model.py  thresholds and the judgement (results and events: backends/journal/check.py)
    parse.py  reading llama-perplexity's output
    run.py    running the reference and the others, the check as an async iterator
"""

from backends.correctness.model import (
                                        DEFAULT_CONTEXT,
                                        DEFAULT_TIMEOUT_S,
                                        MIN_CONTEXT,
                                        REFERENCE_PREFERENCE,
                                        CheckableBuild,
                                        CheckInputError,
                                        CheckOptions,
                                        CorrectnessThresholds,
                                        decided_by_first_chunk,
                                        judge,
)
from backends.correctness.model_file import default_context, model_context_length, model_problem
from backends.correctness.parse import (
                                        DivergenceRun,
                                        PerplexityRun,
                                        error_line,
                                        parse_divergence_output,
                                        parse_perplexity_output,
)
from backends.correctness.run import (
                                        ToolRun,
                                        check_builds,
                                        choose_reference,
                                        reference_text,
                                        results_by_build,
                                        run_check,
                                        run_check_with,
)
from backends.journal.check import (
                                        CHECK_EVENT_TYPES,
                                        STATUSES,
                                        BuildChecked,
                                        CheckEvent,
                                        CheckFinished,
                                        CheckStarted,
                                        CorrectnessResult,
                                        Status,
)

__all__ = [
    "CHECK_EVENT_TYPES", "DEFAULT_CONTEXT", "DEFAULT_TIMEOUT_S", "MIN_CONTEXT",
    "REFERENCE_PREFERENCE", "STATUSES", "BuildChecked", "CheckEvent", "CheckFinished",
    "CheckInputError", "CheckOptions", "CheckStarted", "CheckableBuild", "CorrectnessResult",
    "CorrectnessThresholds", "DivergenceRun", "PerplexityRun", "Status", "ToolRun",
    "check_builds", "choose_reference", "decided_by_first_chunk", "default_context", "error_line",
    "judge",
    "model_context_length", "model_problem", "parse_divergence_output",
    "parse_perplexity_output", "reference_text", "results_by_build", "run_check", "run_check_with",
]
