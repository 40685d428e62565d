"""Request-trace readers for the public trace formats (one room; see docs in traces/README.md).

Formats: `mooncake` (JSONL, cosim.workload.trace), `azure` (Azure LLM inference traces
2023/2024 CSV) and `burstgpt` (BurstGPT CSV). `detect_format` tells them apart from the
file's first line.
"""

from cosim.workload.traces.csv_formats import read_csv_trace
from cosim.workload.traces.detect import FORMATS, detect_format

__all__ = ["FORMATS", "detect_format", "read_csv_trace"]
