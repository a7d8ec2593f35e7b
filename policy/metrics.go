package policy

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec
	reloads *prometheus.CounterVec
	healthy prometheus.Gauge
	revInfo *prometheus.GaugeVec
	lastRev string
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "daskgate_policy_decision_seconds",
			Help: "Policy decision latency by decision.", Buckets: prometheus.ExponentialBuckets(10e-6, 3, 10)}, []string{"decision"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daskgate_policy_errors_total",
			Help: "Policy decisions that failed (runtime error, bad output, panic)."}, []string{"decision"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daskgate_policy_reloads_total",
			Help: "Policy reloads by result."}, []string{"result"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{Name: "daskgate_policy_healthy",
			Help: "1 when the policy files on disk compile, 0 when the last good policy is serving after a failed reload."}),
		revInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "daskgate_policy_revision_info",
			Help: "The serving policy revision (value 1)."}, []string{"revision"}),
	}
	m.healthy.Set(1)
	reg.MustRegister(m.latency, m.errors, m.reloads, m.healthy, m.revInfo)
	return m
}

func (m *metrics) revision(rev string) {
	if m.lastRev != "" {
		m.revInfo.DeleteLabelValues(m.lastRev)
	}
	m.revInfo.WithLabelValues(rev).Set(1)
	m.lastRev = rev
}
