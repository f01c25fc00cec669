from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("adownload")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

USER_AGENT = f"adownload/{__version__}"
