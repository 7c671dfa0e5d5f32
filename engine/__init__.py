"""The pixel pipeline on pyvips: a parsed plan plus source bytes in, encoded bytes out.

Never imports Flask.
"""
