#!/usr/bin/python3
"""Writes test/fixtures/svd-numpy.json: singular values and vectors that numpy (LAPACK gesdd) computes for a few
fixed small matrices, for test/unit/core/svd.test.ts to compare our one-sided Jacobi SVD against.

The matrices are closed-form (no random generator), so the file is reproducible byte for byte:
  tall      6x4  a[i][j] = sin(1 + 3i + 7j)
  wide      3x5  a[i][j] = cos(2i - j) + 0.1 (i + j)
  deficient 5x4  rank 2: the outer products of two fixed vector pairs

Run with the Debian numpy: /usr/bin/python3 scripts/make-svd-fixture.py
"""
import json
import math
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'svd-numpy.json')


def matrices():
    tall = [[math.sin(1 + 3 * i + 7 * j) for j in range(4)] for i in range(6)]
    wide = [[math.cos(2 * i - j) + 0.1 * (i + j) for j in range(5)] for i in range(3)]
    x1, y1 = [1, -2, 0.5, 3, 1], [2, 0, -1, 1]
    x2, y2 = [0, 1, 1, -1, 2], [1, 1, 2, -3]
    deficient = [[x1[i] * y1[j] + 0.5 * x2[i] * y2[j] for j in range(4)] for i in range(5)]
    return {'tall': tall, 'wide': wide, 'deficient': deficient}


def main():
    cases = {}
    for name, a in matrices().items():
        arr = np.array(a, dtype=np.float64)
        u, s, vt = np.linalg.svd(arr, full_matrices=False)
        cases[name] = {
            'rows': arr.shape[0],
            'cols': arr.shape[1],
            'a': [float(x) for x in arr.ravel()],
            's': [float(x) for x in s],
            'u': [float(x) for x in u.ravel()],
            'v': [float(x) for x in vt.T.ravel()],
            'rank': int(np.linalg.matrix_rank(arr)),
        }
    doc = {'source': 'numpy %s np.linalg.svd(full_matrices=False)' % np.__version__, 'cases': cases}
    with open(OUT, 'w') as f:
        json.dump(doc, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
