"""Design-space search: which deployment kind and layout serve the most under the SLO.

    space.py      candidates (layouts within the GPU budget) from the `search` config group
    bisection.py  the most users that still meet the SLO (pure)
    evaluate.py   one cosim run of a candidate at a load, stored by config hash (resume)
    driver.py     static stage (one user) and simulation stage over all candidates (joblib)
    outputs.py    candidates.parquet, frontier.csv, best.json, pareto.png, report.html
"""
