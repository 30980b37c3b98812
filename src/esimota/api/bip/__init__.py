"""esimota.api.bip: the asyncio driver and listener that run the sans-IO BIP core (esimota.ota) on sockets (DESIGN §1)."""
