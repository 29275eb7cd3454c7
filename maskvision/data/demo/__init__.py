"""The embedded demo set: train.parquet and test.parquet (package data), built by tools/make_demo_data.py."""
