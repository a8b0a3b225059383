"""Thin, linear entry points of the ``simpersona`` console script, one module per command.

Each reads top to bottom: config -> seed -> build -> run -> save, one log line per built
object. Keep the work itself in the library modules; these only wire it.
"""
