# The one place the version is written: pyproject.toml reads it from here (hatch's
# [tool.hatch.version]). A literal, not importlib.metadata: that lookup cost 15-30 ms of every
# start-up.
__version__ = "0.1.0.dev0"

USER_AGENT = f"adownload/{__version__}"
