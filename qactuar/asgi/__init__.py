"""The ASGI side of a request: scope, receive, send, lifespan."""
