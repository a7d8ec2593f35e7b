package server

import (
	"strconv"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	startLatency prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry, b Backend) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daskgate_http_requests_total", Help: "API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "daskgate_http_request_duration_seconds", Help: "API request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .05, .1, .5, 1, 5, 25},
		}, []string{"route"}),
		startLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "daskgate_cluster_start_seconds", Help: "Time from cluster creation to RUNNING.",
			Buckets: []float64{.5, 1, 2, 3, 5, 8, 13, 21, 34, 60},
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.startLatency, clusterCollector{b})
	return m
}

func (m *metrics) observe(route, method string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

var clustersDesc = prometheus.NewDesc("daskgate_clusters", "Clusters by public status.", []string{"status"}, nil)

// clusterCollector reports the backend's cluster counts at scrape time.
type clusterCollector struct{ b Backend }

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- clustersDesc }

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.b.Counts()
	for _, st := range cluster.AllStatuses {
		ch <- prometheus.MustNewConstMetric(clustersDesc, prometheus.GaugeValue, float64(counts[st]), st.String())
	}
}
