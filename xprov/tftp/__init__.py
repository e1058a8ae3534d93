"""TFTP without sockets: the wire codec, option negotiation and the read-transfer state
machine. The Twisted transport in `xprov.servers.tftp` drives them."""
