"""Two data centres as one system: the agreement between xprov instances through etcd."""
