package kube_test

import (
	"context"
	"log"

	"github.com/daskgate/daskgate/backend/kube"
)

// The gateway side and the controller share the clients of one process.
// (Compiled, not run: it needs an API server; the integration tests run
// the same against internal/testenv's.)
func Example() {
	ctx := context.Background()
	cl, err := kube.NewClients(kube.ClientConfig{Kubeconfig: "/path/to/kubeconfig"})
	if err != nil {
		log.Fatal(err)
	}
	gw, err := kube.NewGateway(kube.GatewayConfig{Clients: cl, Instance: "dask-gateway", Namespaces: []string{"dask"}})
	if err != nil {
		log.Fatal(err)
	}
	go gw.Run(ctx) // then gw is the server's Backend
	gw.WaitSynced(ctx)
	ctl, err := kube.NewController(kube.ControllerConfig{Clients: cl, Instance: "dask-gateway",
		Namespaces: []string{"dask"}, APIURL: "http://api-dask-gateway.dask:8000/api"})
	if err != nil {
		log.Fatal(err)
	}
	go kube.RunCampaigning(ctx, ctl) // leader-elected; campaigns again after losing its Lease
}
