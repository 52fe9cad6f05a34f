"""IntelliProxyLLM: the virtual model that picks a real model per request, plus fallback chains.

Hot-path parts (classifier, selection, resolver) decide from in-memory state only; the catalog refresher keeps
that state current in the background, the way ConfigWatcher keeps the routing table current.
"""
