"""The models that come with the package: the embedded base model and the shipped trained zip2zip model."""
