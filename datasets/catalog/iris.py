"""iris: scikit-learn's `load_iris()`, 150 flowers, 4 features, 3 classes (see _sklearn.py)."""

from datasets.catalog._sklearn import table_spec

SPEC = table_spec("iris", "load_iris", class_sizes=(50, 50, 50), num_features=4, rank=70)
