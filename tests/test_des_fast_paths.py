"""The DES speed-ups (issue 8) change no result: small runs give the summaries, iteration
durations and request times the code gave before them (tests/data/des_reference.json)."""

import json

import pytest
from des_reference_cases import CASES, REFERENCE, summary_of


@pytest.mark.parametrize("case", list(CASES))
def test_summary_identical_to_reference(case):
    ref = json.loads(REFERENCE.read_text())[case]
    got = summary_of(case)
    assert got == ref
