"""The failover drill: simulated phones polling a running xprov, and what they saw.

`phones` models the devices (files, User-Agents, which site a file points at), `clients`
fetches over HTTP and TFTP on Twisted, `servers` the addresses a phone tries in order,
`run` schedules the polls and watches for the switch, `report` turns the record into
figures (pure), beside the seed design's.
"""
