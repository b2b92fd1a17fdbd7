"""The pure core: models, signal maths, the rotation engine, risk rules and the order planner.

Nothing in this package performs I/O or reads the clock; time and data arrive as arguments.
A test in ``tests/test_architecture.py`` enforces the import boundary.
"""
