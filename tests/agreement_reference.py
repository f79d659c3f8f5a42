"""Published reference data for the agreement tests."""

import numpy as np

N = None  # a missing rating


# Krippendorff (2011) "Computing Krippendorff's alpha-reliability", nominal example: 4 observers x
# 12 units with missing values (also irrCAC's cac.raw4raters, Gwet 2014). Rows = units.
KRIPP = [
    [1, 1, N, 1],
    [2, 2, 3, 2],
    [3, 3, 3, 3],
    [3, 3, 3, 3],
    [2, 2, 2, 2],
    [1, 2, 3, 4],
    [4, 4, 4, 4],
    [1, 1, 2, 1],
    [2, 2, 2, 2],
    [N, 5, 5, 5],
    [N, N, 1, 1],
    [N, N, 3, N],
]


def table_to_pairs(table):
    """Expand a rater-A x rater-B count table into two label vectors."""
    a, b = [], []
    for i, row in enumerate(table):
        for j, n in enumerate(row):
            a += [i] * n
            b += [j] * n
    return np.array(a, object), np.array(b, object)
