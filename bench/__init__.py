"""Benchmarks of the mltrain server against its floors and peers (see README.md)."""
