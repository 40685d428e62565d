"""The seed study's conclusion bullets follow the runs: a verdict is computed, never kept."""

import importlib.util
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("study", ROOT / "scripts" / "study_afd_vs_chunked.py")
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)


def runs(afd_gain: float) -> pd.DataFrame:
    """The recorded study with every AFD run's throughput and per-user rate scaled by afd_gain."""
    df = pd.read_csv(study.RECORD)
    a = df.kind == "afd"
    df.loc[a, "output_tok_s_per_gpu"] *= afd_gain
    df.loc[a, "tok_s_per_user_mean"] *= afd_gain
    return df


def test_bullets_name_chunked_on_the_record():
    text = study.render(pd.read_csv(study.RECORD))
    assert "AFD does *not* reach a higher tokens/s per user" in text
    assert "chunked has the higher tokens/s per GPU" in text


def test_bullets_turn_when_afd_wins():
    df = runs(3.0)
    assert "AFD reaches a higher tokens/s per user" in study.strict_bullet(df)
    loose = study.frontier_bullet(df)
    assert "AFD has the higher tokens/s per GPU" in loose
    assert "At every objective AFD's best run is ahead" in loose


def test_mixed_frontier_names_both_kinds():
    df = runs(1.0)
    # make AFD's best unconstrained run the best of all, leave the tight objectives to chunked
    i = df[(df.kind == "afd")].output_tok_s_per_gpu.idxmax()
    df.loc[i, "output_tok_s_per_gpu"] = 2 * df.output_tok_s_per_gpu.max()
    df.loc[i, "tpot_ms_p90"] = 200.0
    text = study.frontier_bullet(df)
    assert "Neither kind is ahead at every objective" in text
    assert "chunked by" in text and "AFD by" in text and "unconstrained" in text
