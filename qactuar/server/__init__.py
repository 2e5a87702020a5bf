"""asyncio binding of the HTTP core: one Protocol per connection, one Server per process."""

from .server import Server, ServerState
from .sockets import BindError, bind_sockets

__all__ = ["BindError", "Server", "ServerState", "bind_sockets"]
