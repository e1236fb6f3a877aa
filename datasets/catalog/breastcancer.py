"""breastcancer: scikit-learn's `load_breast_cancer()`, 569 tumours, 30 features, malignant (0) or
benign (1) (see _sklearn.py)."""

from datasets.catalog._sklearn import table_spec

NAME = "breastcancer"
SUMMARY = "scikit-learn's breast cancer table: 569 tumours, 30 features, 2 classes"

SPEC = table_spec(NAME, "load_breast_cancer", class_sizes=(212, 357), num_features=30, rank=72)
