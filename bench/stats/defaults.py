"""The analysis defaults and the names of the correction methods: the one place they are set.

Light on purpose (no numpy): the command line reads these to build its options and help texts,
and every layer below (stats, analysis, figures, the workload schema) takes its defaults from here.
"""

DEFAULT_MARGIN = 0.02  # equivalence margin, as a fraction of the baseline (±2 %)
DEFAULT_ALPHA = 0.05  # significance level of the family of points
DEFAULT_CORRECTION = "holm"
# multiple-comparison corrections across points: option value -> the name said in output
CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
