"""Helpers every room shares, one of each: frame coercion, messages, files, the machine.

Nothing here imports another liveheat room.
"""
