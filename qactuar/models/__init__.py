"""Process models: how processes are arranged around the same server core."""
