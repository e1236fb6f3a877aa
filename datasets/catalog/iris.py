"""iris: scikit-learn's `load_iris()`, 150 flowers, 4 features, 3 classes (see _sklearn.py)."""

from datasets.catalog._sklearn import table_spec

NAME = "iris"
SUMMARY = "scikit-learn's iris table: 150 flowers, 4 features, 3 classes"

SPEC = table_spec(NAME, "load_iris", class_sizes=(50, 50, 50), num_features=4, rank=70)
