"""The transports (HTTP and HTTPS, TFTP, the admin API): each maps the gate's typed answers
to its own wire format and nothing more."""
