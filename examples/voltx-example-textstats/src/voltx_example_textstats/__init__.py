"""Example voltx plugin: corpus statistics in four phases (see README.md)."""
