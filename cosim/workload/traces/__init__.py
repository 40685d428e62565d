"""Request-trace readers for the public trace formats (one room; see docs in traces/README.md).

Formats: `mooncake` (JSONL, cosim.workload.trace), `azure` (Azure LLM inference traces
2023/2024 CSV), `bailian` (Qwen-Bailian JSONL, 16-token blocks) and `burstgpt` (BurstGPT
CSV). `detect_format` tells them apart from the
file's first line.
"""

from cosim.workload.traces.bailian import read_bailian
from cosim.workload.traces.csv_formats import read_csv_trace
from cosim.workload.traces.detect import FORMATS, detect_format

__all__ = ["FORMATS", "detect_format", "read_bailian", "read_csv_trace"]
