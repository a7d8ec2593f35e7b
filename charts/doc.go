// Package charts holds daskgate's Helm charts: dask-gateway (the gateway,
// its built-in proxy and the Kubernetes controller) and daskhub (beside
// JupyterHub). The Go code here is their tests: helm v3 and v4 lint and
// render them, kubeconform and a real API server check what they render,
// and the installed release's own containers run as the chart configures
// them (docs/helm.md).
package charts
