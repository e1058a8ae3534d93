"""xprov: provisioning server for VoIP desk phones with built-in site failover."""

__version__ = "0.1.0"
