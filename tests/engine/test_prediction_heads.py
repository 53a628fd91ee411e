"""The class picked per pixel is numpy's argmax, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from engine.inference.heads import most_probable


@pytest.mark.parametrize("classes", [1, 2, 5, 12])
def test_most_probable_is_argmax_over_the_first_axis(classes):
    rng = np.random.default_rng(classes)
    probabilities = rng.random((classes, 37, 53)).astype(np.float32)
    probabilities[:, :5] = 0.25  # ties: the first class wins, as with np.argmax
    probabilities[-1, 10:12] = 1.0
    result = most_probable(probabilities)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, np.argmax(probabilities, axis=0))
