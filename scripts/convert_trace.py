"""Convert a request trace in another column layout into a format cosim reads (docs/traces.md).

    python scripts/convert_trace.py requests.csv --to mooncake -o trace.jsonl \\
        --time-col ts --time-unit ms --input-col prompt_len --output-col completion_len \\
        [--session-col conversation] [--hash-col block_hashes] [--on-error skip]

Input: CSV with a header row, or JSON lines (told from the first byte, or --input-format).
Output (--to): mooncake or bailian JSONL, azure or burstgpt CSV; rows sorted by time and
written relative to the first request. A bad row is one line naming file, line and column,
exit code 2 (with --on-error skip: counted, reported, and left out).
"""

from __future__ import annotations

import argparse
import sys

from cosim.errors import ConfigError
from cosim.workload.traces.convert import OUTPUT_FORMATS, TIME_UNITS, Columns, read_rows, write_rows
from cosim.workload.traces.records import LineErrors


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("input", help="the trace to convert (CSV or JSONL)")
    p.add_argument("-o", "--output", required=True, help="file to write (atomically)")
    p.add_argument("--to", required=True, choices=OUTPUT_FORMATS, help="output format")
    p.add_argument("--input-format", default="auto", choices=("auto", "csv", "jsonl"))
    p.add_argument("--time-col", required=True, help="column of the arrival time")
    p.add_argument("--time-unit", default="s", choices=tuple(TIME_UNITS),
                   help="unit of --time-col (iso: an ISO 8601 date-time)")
    p.add_argument("--input-col", required=True, help="column of the prompt tokens")
    p.add_argument("--output-col", required=True, help="column of the generated tokens")
    p.add_argument("--session-col", help="column naming the conversation (bailian: "
                   "parent_chat_id and turn come from it)")
    p.add_argument("--hash-col", help="column of block hash ids (a JSON list, or integers "
                   "separated by spaces or ';')")
    p.add_argument("--on-error", default="error", choices=("error", "skip"),
                   help="a malformed row stops the conversion (error) or is counted and left out")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cols = Columns(time=args.time_col, input=args.input_col, output=args.output_col,
                   session=args.session_col, hash_ids=args.hash_col, time_unit=args.time_unit)
    errors = LineErrors(args.on_error)
    try:
        rows, dropped = read_rows(args.input, cols, args.input_format, errors)
        write_rows(rows, args.output, args.to)
    except ConfigError as e:
        print(f"convert_trace: {e}", file=sys.stderr)
        return 2
    skipped = f", {errors.count} malformed rows skipped" if errors.count else ""
    print(f"{args.output}: {len(rows)} requests ({args.to}), {dropped} rows with 0 output "
          f"tokens dropped{skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
