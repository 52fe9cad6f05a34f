"""The navigation bar: (label, endpoint) in display order. Adding a page is one line here."""

NAV_ITEMS = [
    ("Overview", "dashboard.overview"),
    ("Connections", "dashboard.connections"),
    ("Nodes", "dashboard.nodes"),
    ("Models", "dashboard.models"),
    ("Routing", "intelli.routing"),
    ("AirLLM", "airllm_panel.page"),
    ("Performance", "intelli.performance"),
    ("Statistics", "dashboard.statistics"),
    ("Request log", "dashboard.request_log"),
    ("API", "dashboard.api_reference"),
]
