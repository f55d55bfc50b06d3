"""Rows from many files become builds, and builds are split by the machine they ran on.

A build is its backend, build number, commit, GPU and, where a wrapper or table named it, a
label. Where two files hold the same build measuring the same tests (same model, test and
settings), their names tell them apart: the words that differ between the files' names,
less the words that describe the test (``longctx32768``, ``prefill``, ``r5``) and the
backend's own name (``rocm-7_2_3`` and ``rocm7-nightlies`` give "7.2.3" and "7-nightlies").
A failed run whose log has no build line joins the build its file name matches.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiles.importers.failures import DESCRIPTOR, tokens
from profiles.importers.rows import (
    SECTION_KEY,
    SETTING_KEYS,
    Row,
    canonical_backend,
    int_or_none,
    normalize_gpu,
)


@dataclass(frozen=True)
class Ident:
    label: str | None
    backend: str
    variant: str
    number: int | None
    commit: str | None
    gpu: str
    machine: str = ""


def model_key(raw: dict[str, Any]) -> str:
    filename = str(raw.get("model_filename") or "").replace("\\", "/").rsplit("/", 1)[-1]
    return filename or str(raw.get("model_type") or "")


def settings_of(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((k, str(raw[k])) for k in SETTING_KEYS if k in raw)


def family(row: Row) -> str:
    backend = canonical_backend(str(row.raw.get("backends") or ""))
    return backend.split(",")[0] if backend else (row.label or "")


def _cells(rows: Iterable[Row]) -> set[Hashable]:
    return {(model_key(r.raw), r.raw.get("n_prompt"), r.raw.get("n_gen"), r.raw.get("n_depth"),
             settings_of(r.raw), tuple(sorted((r.raw.get("import_settings") or {}).items())))
            for r in rows if not r.failed}


# ---------------------------------------------------------------------------------------
# File variants


def _fields(name: str) -> list[str]:
    return [f for f in name.split("__") if f] if "__" in name else [name]


def _field_words(field: str) -> list[str]:
    return [t for t in re.split(r"[._\-\s]+", field) if t]


def _variants_of(names: dict[str, str], backend: str) -> dict[str, str]:
    """The words that tell each name apart: fields all names share, words every remaining
    field shares, words that describe the test, and the backend's own name are dropped."""
    fields = {s: [f for f in _fields(n) if not DESCRIPTOR.match(f)] for s, n in names.items()}
    common_fields = set.intersection(*(set(fs) for fs in fields.values()))
    rest = {s: [f for f in fs if f not in common_fields] for s, fs in fields.items()}
    word_sets = [{w for f in fs for w in _field_words(f)} for fs in rest.values()]
    common_words = set.intersection(*word_sets) if word_sets else set()
    lowered = backend.lower()
    out = {}
    for source, fs in rest.items():
        words: list[str] = []
        for f in fs:
            for w in _field_words(f):
                low = w.lower()
                if w in common_words or DESCRIPTOR.match(w) or low in (lowered, "llama", "cpp", "llamacpp"):
                    continue
                words.append(w[len(lowered):] if low.startswith(lowered) else w)
        out[source] = re.sub(r"(?<=\d)-(?=\d)", ".", "-".join(words)).strip("-.")
    return out


def _relative_names(group: Sequence[str]) -> dict[str, str]:
    """File names, with the folders below their common parent when the names alone repeat."""
    stems = {s: Path(s).stem for s in group}
    if len(set(stems.values())) == len(stems):
        return stems
    parents = [Path(s).resolve().parent.parts for s in group]
    depth = 0
    while all(len(p) > depth for p in parents) and len({p[depth] for p in parents}) == 1:
        depth += 1
    return {s: "__".join([*Path(s).resolve().parent.parts[depth:], stems[s]]) for s in group}


def _model_groups(sources: dict[str, list[Row]]) -> dict[str, list[str]]:
    """Files by model; a file with failures only joins the file whose name it shares most of."""
    groups: dict[str, list[str]] = defaultdict(list)
    with_results = {s: model_key(next(r for r in rows if not r.failed).raw)
                    for s, rows in sources.items() if any(not r.failed for r in rows)}
    for source, model in with_results.items():
        groups[model].append(source)
    for source in sources:
        if source in with_results:
            continue
        mine = tokens(Path(source).stem)
        best = max(with_results, default=None, key=lambda s: _shared_prefix(mine, tokens(Path(s).stem)))
        if best is not None and _shared_prefix(mine, tokens(Path(best).stem)) > 0:
            groups[with_results[best]].append(source)
        else:
            groups["file:" + (Path(source).stem.split("__")[0])].append(source)
    return groups


def _shared_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x.lower() != y.lower():
            break
        n += 1
    return n


def file_variants(rows: Sequence[Row]) -> dict[str, str]:
    """source -> variant for files that must be told apart by name."""
    by_family: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_family[family(row)][row.source].append(row)
    out: dict[str, str] = {}
    for backend, sources in by_family.items():
        for group in _model_groups(sources).values():
            if len(group) < 2:
                continue
            variants = _variants_of(_relative_names(group), backend)
            failed_only = [s for s in group if not any(not r.failed for r in sources[s])]
            ran = {variants[s] for s in group if s not in failed_only}
            if _needs_names(group, sources) or any(variants[s] not in ran for s in failed_only):
                out.update(variants)
    return out


def _needs_names(group: Sequence[str], sources: dict[str, list[Row]]) -> bool:
    cells = {s: _cells(sources[s]) for s in group}
    with_results = [s for s in group if cells[s]]
    if not with_results:
        return False
    for i, a in enumerate(with_results):
        for b in with_results[i + 1:]:
            if cells[a] & cells[b] and _same_identity(sources[a], sources[b]):
                return True
    return False


def _same_identity(a: Sequence[Row], b: Sequence[Row]) -> bool:
    def ids(rows: Sequence[Row]) -> set[Hashable]:
        return {(r.label, family(r), int_or_none(r.raw.get("build_number")), r.raw.get("build_commit"))
                for r in rows if not r.failed}
    return bool(ids(a) & ids(b))


# ---------------------------------------------------------------------------------------
# Identities and names


def identity(row: Row, variant: str) -> Ident:
    raw = row.raw
    number = int_or_none(raw.get("build_number"))
    commit = str(raw.get("build_commit") or "") or None
    return Ident(label=row.label, backend=canonical_backend(str(raw.get("backends") or "")),
                 variant=variant, number=number or None,
                 commit=None if commit in (None, "unknown") else commit,
                 gpu=normalize_gpu(raw.get("gpu_info")), machine=row.machine if raw.get(SECTION_KEY) else "")


def merge_failures(keys: dict[Ident, list[Row]]) -> dict[Ident, list[Row]]:
    """A failure without build number or backend joins the one build its label/file matches."""
    with_results = [k for k, rows in keys.items() if any(not r.failed for r in rows)]
    out: dict[Ident, list[Row]] = defaultdict(list)
    for key, rows in keys.items():
        target = key
        if key not in with_results:
            target = _match(key, with_results) or _match(key, [k for k in keys if k != key and k.gpu]) or key
        out[target].extend(rows)
    return out


def adopt_backends(keys: dict[Ident, list[Row]]) -> dict[Ident, list[Row]]:
    """A failed run's banner says "ROCm" where its build ran as "ROCm,RPC": use the build's."""
    ran = {k.backend for k, rows in keys.items() if any(not r.failed for r in rows)}
    out: dict[Ident, list[Row]] = defaultdict(list)
    for key, rows in keys.items():
        fuller = {b for b in ran if key.backend and b != key.backend and b.split(",")[0] == key.backend}
        if len(fuller) == 1 and not any(not r.failed for r in rows):
            key = Ident(key.label, fuller.pop(), key.variant, key.number, key.commit, key.gpu, key.machine)
        out[key].extend(rows)
    return out


def _match(key: Ident, candidates: Sequence[Ident]) -> Ident | None:
    def fits(k: Ident) -> bool:
        return (k.label == key.label and k.variant == key.variant
                and (not key.backend or k.backend.split(",")[0] == key.backend.split(",")[0])
                and (key.number is None or k.number == key.number)
                and (key.commit is None or k.commit == key.commit)
                and (not key.gpu or k.gpu == key.gpu))
    matches = [k for k in candidates if fits(k)]
    return matches[0] if len(matches) == 1 else None


def name_builds(keys: Sequence[Ident], gpu_display: dict[str, str]) -> dict[Ident, str]:
    """Short, distinct names: label or backend, file variant, then build number, GPU as needed."""
    names = {k: " ".join(p for p in (k.label or k.backend or "unknown build", k.variant) if p) for k in keys}

    def clashes() -> list[list[Ident]]:
        groups: dict[str, list[Ident]] = defaultdict(list)
        for k, v in names.items():
            groups[v].append(k)
        return [ks for ks in groups.values() if len(ks) > 1]

    def number(k: Ident) -> str:
        return f"b{k.number}" if k.number else (k.commit or "")

    def gpu(k: Ident) -> str:
        return f"@ {gpu_display.get(k.gpu, k.gpu)}" if k.gpu else ""

    def commit(k: Ident) -> str:
        return k.commit or ""

    def machine(k: Ident) -> str:
        return f"@ {k.machine}" if k.machine else ""

    for extend in (number, gpu, commit, machine):
        for ks in clashes():
            parts = {k: extend(k) for k in ks}
            if len(set(parts.values())) > 1:
                for k in ks:
                    if parts[k]:
                        names[k] = f"{names[k]} {parts[k]}"
    for ks in clashes():
        for i, k in enumerate(ks[1:], 2):
            names[k] = f"{names[k]} #{i}"
    return names


def section_machines(rows: Sequence[Row]) -> None:
    """Pasted tables of one build under two headings measuring the same tests: two machines."""
    by_build: dict[Hashable, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        section = row.raw.get(SECTION_KEY)
        if section and not row.machine:
            by_build[identity(row, "")][str(section)].append(row)
    for sections in list(by_build.values()):
        if len(sections) < 2:
            continue
        cells = {s: _cells(rs) for s, rs in sections.items()}
        names = list(cells)
        if any(cells[a] & cells[b] for i, a in enumerate(names) for b in names[i + 1:]):
            for section, rs in sections.items():
                for row in rs:
                    row.machine = section


def machine_of(rows: Iterable[Row]) -> str:
    hosts = Counter(r.machine for r in rows if r.machine)
    if hosts:
        return hosts.most_common(1)[0][0]
    cpus = Counter(" ".join(str(r.raw.get("cpu_info") or "").split()) for r in rows)
    cpus.pop("", None)
    return cpus.most_common(1)[0][0] if cpus else ""


def failure_models(rows: Sequence[Row]) -> None:
    """A failed run's log rarely names its model: take it from the file whose name it shares."""
    results: dict[str, str] = {}
    for row in rows:
        if not row.failed and row.source not in results:
            results[row.source] = model_key(row.raw)
    for row in rows:
        if not row.failed or model_key(row.raw):
            continue
        if row.source in results:
            row.raw["model_filename"] = results[row.source]
            continue
        mine = tokens(Path(row.source).stem)
        best = max(results, default=None, key=lambda s: _shared_prefix(mine, tokens(Path(s).stem)))
        if best is not None and _shared_prefix(mine, tokens(Path(best).stem)) >= 2:
            row.raw["model_filename"] = results[best]
