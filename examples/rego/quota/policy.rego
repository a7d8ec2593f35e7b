# Per-user quota: at most 2 active clusters, each capped at 8 cores
# (scheduler included), so no user holds more than 16 cores. Creates are
# decided atomically per user: two racing creates cannot both pass.
package daskgate.authz

max_clusters := 2

max_cores := 16

# What the web page shows beside the user's usage.
quota := {"clusters": max_clusters, "cores": max_cores}

default allow := false

allow if {
	input.action == "create"
	input.usage.clusters < max_clusters
	input.usage.cores + input.request.config.scheduler_cores <= max_cores
}

allow if input.action == "list"

# Dashboards: browsers send no API credentials (input.user.name is "" then),
# so keep them open as upstream does, or restrict them by input.remote_addr.
allow if input.action == "dashboard"

allow if {
	input.action != "create"
	input.cluster.owner == input.user.name
}

reason := sprintf("Quota exceeded: %s already has %d of %d clusters", [input.user.name, input.usage.clusters, max_clusters]) if {
	input.action == "create"
	input.usage.clusters >= max_clusters
}

else := sprintf("User %s lacks permissions to %s cluster %s", [input.user.name, input.action, input.cluster.name]) if input.action != "create"

else := sprintf("Quota exceeded: %s would hold more than %d cores", [input.user.name, max_cores])
