"""The transports: HTTP, TFTP and the admin API."""
