"""Leaf helpers that import nothing else of zip2zip: the cache folder, hardware probes, PEFT helpers."""
