"""qactuar: an ASGI server with a choice of process models and a Tornado bridge."""

from .config import Config, ConfigError
from .main import run
from .server import Server

__version__ = "0.2.0"

__all__ = ["Config", "ConfigError", "Server", "__version__", "run"]
