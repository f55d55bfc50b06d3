"""Find GGUF models and read what they are, without reading their weights.

The header (metadata and tensor table) is parsed straight from a read-only memory map with
the ``gguf`` package's constants: only the pages holding the header are touched, so a 60 GB
file reads as fast as a small one. (``gguf.GGUFReader`` builds a Python object for every
token of a 150k vocabulary and takes seconds on such a file.)

Models split by gguf-split (``NAME-00001-of-00003.gguf``) are one model: sizes and tensors
are summed over the parts, and a missing part is a problem. A file that cannot be used is
still listed, with a one-line ``problem``.

    info.py    ModelInfo and the constants
    header.py  the GGUF header, parsed from a memory map
    read.py    reading models, finding them in folders
    fit.py     fitting in device memory
"""

from backends.models.fit import (
    COMPUTE_BASE_BYTES,
    GIB,
    MIB,
    UBATCH,
    FitEstimate,
    cache_type_bytes,
    compute_buffer_bytes,
    estimate_fit,
    kv_cache_bytes,
)
from backends.models.header import (
    ArrayInfo,
    GGUFHeader,
    HeaderError,
    HeaderTruncated,
    TensorEntry,
    parse_header_bytes,
    read_header,
)
from backends.models.info import (
    EXPERT_TENSOR,
    KNOWN_ARCHITECTURES,
    SMALL_ARRAY,
    SPLIT_NAME,
    ModelInfo,
    ModelSearchError,
)
from backends.models.read import find_models, model_from_headers, read_model, split_parts

__all__ = [
    "COMPUTE_BASE_BYTES",
    "EXPERT_TENSOR",
    "GIB",
    "KNOWN_ARCHITECTURES",
    "MIB",
    "SMALL_ARRAY",
    "SPLIT_NAME",
    "UBATCH",
    "ArrayInfo",
    "FitEstimate",
    "GGUFHeader",
    "HeaderError",
    "HeaderTruncated",
    "ModelInfo",
    "ModelSearchError",
    "TensorEntry",
    "cache_type_bytes",
    "compute_buffer_bytes",
    "estimate_fit",
    "find_models",
    "kv_cache_bytes",
    "model_from_headers",
    "parse_header_bytes",
    "read_header",
    "read_model",
    "split_parts",
]
