"""The node pool's part of `GET /metrics`: per node up, in-flight, waiting and model loads from the routing
engine's live status (when it runs), and requests and errors from `stats_node_total` (every worker's sum)."""
from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .node_status import fleet_status, node_state
from .telemetry.node_stats import node_totals


class NodeCollector:
    """A prometheus_client collector read at scrape time; `node` labels are the node names."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        yield from self._live()
        requests = CounterMetricFamily("intelliproxy_node_requests", "Requests answered by each Ollama node.",
                                       labels=["node"])
        errors = CounterMetricFamily("intelliproxy_node_request_errors",
                                     "Requests to each Ollama node that failed (HTTP 4xx/5xx or a broken stream).",
                                     labels=["node"])
        with self.services.session_factory() as session:
            totals = node_totals(session)
        for name in sorted(totals):
            requests.add_metric([name], totals[name]["requests"])
            errors.add_metric([name], totals[name]["errors"])
        yield from (requests, errors)

    def _live(self):
        live = fleet_status(self.services)
        if not live:
            return
        up = GaugeMetricFamily("intelliproxy_node_up", "1 when the node answers its health probes.", labels=["node"])
        in_flight = GaugeMetricFamily("intelliproxy_node_in_flight", "Requests the node is answering now.",
                                      labels=["node"])
        waiting = GaugeMetricFamily("intelliproxy_node_waiting", "Requests waiting in the proxy for this node.",
                                    labels=["node"])
        loads = CounterMetricFamily("intelliproxy_node_model_loads",
                                    "Model loads observed on the node (a model that appeared in its /api/ps).",
                                    labels=["node"])
        for node in self.services.watcher.table.nodes:
            status = live.get(node.id) or {}
            up.add_metric([node.name], 1 if node_state(node, status) == "up" else 0)
            in_flight.add_metric([node.name], status.get("in_flight", 0))
            waiting.add_metric([node.name], status.get("waiting", 0))
            loads.add_metric([node.name], status.get("loads_observed", 0))
        yield from (up, in_flight, waiting, loads)
