"""The language of rendering: render URLs and stack JSON parsed into frozen, typed plans.

Pure Python: this package never imports Flask or pyvips.
"""
