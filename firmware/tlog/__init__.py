"""tlog: the telelogger application package (data layer, sampling, delivery).

Submodules are imported explicitly (``from tlog import spool``) so that a
board only loads what it uses.
"""
