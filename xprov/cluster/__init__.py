"""Agreement between xprov instances through an etcd cluster (issue 16)."""
