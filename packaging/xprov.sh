#!/bin/sh
# xprov runs from its private virtual environment (see /usr/share/doc/xprov).
exec /usr/lib/xprov/venv/bin/python3 -m xprov.cli "$@"
