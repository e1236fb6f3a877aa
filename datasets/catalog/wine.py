"""wine: scikit-learn's `load_wine()`, 178 wines, 13 features, 3 cultivars (see _sklearn.py)."""

from datasets.catalog._sklearn import table_spec

NAME = "wine"
SUMMARY = "scikit-learn's wine table: 178 wines, 13 features, 3 cultivars"

SPEC = table_spec(NAME, "load_wine", class_sizes=(59, 71, 48), num_features=13, rank=71)
