"""The proxy face (port 9998): a lean WSGI app that speaks Ollama's API and relays to the chosen backend."""
