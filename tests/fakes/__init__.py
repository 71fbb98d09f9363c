"""Fakes at the boundary: real servers that stand in for the services skywatch talks to."""
