"""Exporting a zip2zip model as a Hugging Face Hub repo folder with a model card, and uploading it."""
