"""The running parts of one xprov process, each a `twisted.application` service with
`startService`/`stopService` and a `reconfigure` that applies the config keys it owns
(docs/architecture.md, "Config keys"): `Listeners`, `Tftp`, `Monitoring`,
`InventoryRefresher`, and the `ReloadCoordinator` that hands each its part of a reload.
The objects they share live in `Core`; the top service is `xprov.service.Service`."""
