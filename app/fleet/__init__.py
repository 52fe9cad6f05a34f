"""The pool of Ollama nodes: probes, the shared in-flight board, the waiting line (the rule is app.routing)."""
