"""Pilot tests of each view alone, with a fake data source."""
