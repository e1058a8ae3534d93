"""The monitor: probes of every service at every site, and the failover rule fed by them.

`loop` runs the rounds, `registry` is the one table of service types and their probes,
`state` the pure fall/rise and failover rule, `pool` and `errors` what probes share; one
module per probe type (`sip`, `stun`, `mysql`).
"""
