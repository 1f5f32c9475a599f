#!/usr/bin/env python3
"""Writes deploy/grafana/nexussale.json, the operator dashboard, from the panel list below (one
place to edit; the JSON is committed so Grafana's provisioning reads it as is).

    python3 scripts/grafana_dashboard.py
"""
import json
import pathlib

DS = {"type": "prometheus", "uid": "nexussale-prometheus"}
SKU = 'sku=~"$sku"'


def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(title, kind, exprs, x, y, w=12, h=8, unit=None, stack=False, description=None,
          thresholds=None, mappings=None):
    p = {
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(exprs)],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if description:
        p["description"] = description
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 20 if stack else 0,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        }
        p["options"] = {"legend": {"displayMode": "table", "placement": "bottom"},
                        "tooltip": {"mode": "multi"}}
    if thresholds:
        p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": thresholds}
        p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
    if mappings:
        p["fieldConfig"]["defaults"]["mappings"] = mappings
    return p


GREEN_RED = [{"color": "green", "value": None}, {"color": "red", "value": 1}]
RED_GREEN = [{"color": "red", "value": None}, {"color": "green", "value": 1}]

panels = [
    panel("Stock burn-down", "timeseries", [
        (f"sum by (sku) (nexussale_units_available{{{SKU}}})", "{{sku}} available"),
        (f"sum by (sku) (nexussale_units_reserved{{{SKU}}})", "{{sku}} reserved"),
        (f"sum by (sku) (nexussale_units_sold{{{SKU}}})", "{{sku}} sold"),
    ], 0, 0, description="Units of each sale by state, as the stock store counts them."),
    panel("Purchases by outcome", "timeseries", [
        ("sum by (outcome) (rate(nexussale_purchases_total[$__rate_interval]))", "{{outcome}}"),
    ], 12, 0, unit="reqps", stack=True,
        description="accepted, duplicate (a retried idempotency key), sold_out, limit_exceeded, "
                    "not_active, rate_limited, unknown_sale, invalid, forbidden, conflict, "
                    "unavailable (503), failed (other 5xx)."),
    panel("Purchase latency", "timeseries", [
        ("histogram_quantile(0.5, sum by (le) (rate(nexussale_purchase_duration_seconds_bucket[$__rate_interval])))", "p50"),
        ("histogram_quantile(0.99, sum by (le) (rate(nexussale_purchase_duration_seconds_bucket[$__rate_interval])))", "p99"),
        ("histogram_quantile(0.999, sum by (le) (rate(nexussale_purchase_duration_seconds_bucket[$__rate_interval])))", "p99.9"),
    ], 0, 8, unit="s"),
    panel("Worker lag and publish latency", "timeseries", [
        ("histogram_quantile(0.5, sum by (le) (rate(nexussale_worker_lag_seconds_bucket[$__rate_interval])))", "lag p50"),
        ("histogram_quantile(0.99, sum by (le) (rate(nexussale_worker_lag_seconds_bucket[$__rate_interval])))", "lag p99"),
        ("histogram_quantile(0.99, sum by (le) (rate(nexussale_publish_duration_seconds_bucket[$__rate_interval])))", "publish p99"),
    ], 12, 8, unit="s",
        description="From a purchase to its event reaching the worker; and the queue's publish."),
    panel("Orders persisted and settled", "timeseries", [
        ("sum(rate(nexussale_orders_persisted_total[$__rate_interval]))", "persisted"),
        ("sum by (status) (rate(nexussale_orders_settled_total[$__rate_interval]))", "{{status}}"),
    ], 0, 16, unit="ops"),
    panel("Worker batches", "timeseries", [
        ("histogram_quantile(0.5, sum by (le) (rate(nexussale_worker_batch_size_bucket[$__rate_interval])))", "batch size p50"),
        ("histogram_quantile(0.99, sum by (le) (rate(nexussale_worker_insert_duration_seconds_bucket[$__rate_interval])))", "insert p99 (s)"),
    ], 12, 16),
    panel("Dead letters (1 h)", "stat", [
        ("sum(increase(nexussale_dead_letters_total[1h]))", "dead letters"),
    ], 0, 24, w=4, h=6, thresholds=GREEN_RED),
    panel("Backends", "stat", [
        ("min by (backend) (nexussale_backend_up)", "{{backend}}"),
    ], 4, 24, w=8, h=6, thresholds=RED_GREEN,
        mappings=[{"type": "value", "options": {"0": {"text": "DOWN"}, "1": {"text": "UP"}}}]),
    panel("Books: available + reserved + sold - stock", "timeseries", [
        (f"sum by (sku) (nexussale_units_available{{{SKU}}} + nexussale_units_reserved{{{SKU}}} + nexussale_units_sold{{{SKU}}} - nexussale_units_stock{{{SKU}}})", "{{sku}} store"),
        (f"sum by (sku, kind) (nexussale_reconcile_drift_units{{{SKU}}})", "{{sku}} {{kind}} drift vs orders"),
    ], 12, 24, h=6, description="0 when the books balance: the store's own counts, and the "
                                "store against the repository (the periodic reconcile)."),
    panel("Stock rebuilding", "stat", [
        ("max by (sku) (nexussale_stock_rebuilding)", "{{sku}}"),
    ], 0, 30, w=4, h=6, thresholds=GREEN_RED),
    panel("HTTP answers by class", "timeseries", [
        ("sum by (class) (rate(nexussale_http_requests_total[$__rate_interval]))", "{{class}}"),
        ("sum(nexussale_http_requests_in_flight)", "in flight"),
    ], 4, 30, w=8, h=6, unit="reqps"),
    panel("Process", "timeseries", [
        ("rate(process_cpu_seconds_total{job=\"nexussale\"}[$__rate_interval])", "{{instance}} CPU (cores)"),
        ("process_resident_memory_bytes{job=\"nexussale\"} / 1048576", "{{instance}} RSS (MiB)"),
        ("process_open_fds{job=\"nexussale\"}", "{{instance}} open fds"),
    ], 12, 30, h=6),
]
for i, p in enumerate(panels, start=1):
    p["id"] = i

dashboard = {
    "uid": "nexussale",
    "title": "NexusSale",
    "description": "Flash sales: stock, purchases, latency, the worker, the books, the backends.",
    "tags": ["nexussale"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "editable": False,
    "refresh": "5s",
    "time": {"from": "now-30m", "to": "now"},
    "templating": {"list": [{
        "name": "sku", "label": "Sale", "type": "query", "datasource": DS,
        "query": {"query": "label_values(nexussale_units_stock, sku)", "refId": "sku"},
        "definition": "label_values(nexussale_units_stock, sku)",
        "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }]},
    "annotations": {"list": []},
    "panels": panels,
}
out = pathlib.Path(__file__).resolve().parent.parent / "deploy/grafana/nexussale.json"
out.write_text(json.dumps(dashboard, indent=2) + "\n")
print(f"wrote {out}")
