package proxy

import "github.com/prometheus/client_golang/prometheus"

// metrics counts what the proxy does; kind is "tls" (passthrough) or
// "http".
type metrics struct {
	conns      *prometheus.CounterVec
	active     *prometheus.GaugeVec
	bytes      *prometheus.CounterVec
	unknownSNI prometheus.Counter
	timeouts   prometheus.Counter
	rejected   *prometheus.CounterVec
	dialErrors *prometheus.CounterVec
	dashboard  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daskgate_proxy_connections_total",
			Help: "Connections accepted, by kind (tls passthrough or http)."}, []string{"kind"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "daskgate_proxy_active_connections",
			Help: "Open connections, by kind."}, []string{"kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daskgate_proxy_passthrough_bytes_total",
			Help: "Bytes spliced between clients and schedulers, by direction."}, []string{"direction"}),
		unknownSNI: prometheus.NewCounter(prometheus.CounterOpts{Name: "daskgate_proxy_unknown_sni_total",
			Help: "TLS connections for a cluster with no route."}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: "daskgate_proxy_hello_timeouts_total",
			Help: "Connections closed because the first bytes or ClientHello did not arrive in time."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daskgate_proxy_rejected_total",
			Help: "Connections closed before routing, by reason."}, []string{"reason"}),
		dialErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daskgate_proxy_dial_errors_total",
			Help: "Failed dials to schedulers and dashboards."}, []string{"target"}),
		dashboard: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "daskgate_proxy_dashboard_request_seconds",
			Help: "Dashboard request latency through the proxy.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
	}
	reg.MustRegister(m.conns, m.active, m.bytes, m.unknownSNI, m.timeouts, m.rejected, m.dialErrors, m.dashboard)
	return m
}
