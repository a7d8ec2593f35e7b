package daskgate.authz

default allow := false

allow if input.action in {"create", "list"}

# Dashboards: browsers send no API credentials (input.user.name is "" then),
# so keep them open as upstream does, or restrict them by input.remote_addr.
allow if input.action == "dashboard"

allow if input.cluster.owner == input.user.name

allow if {
	input.action in {"view", "scale", "adapt"}
	g := input.cluster.options.shared_group
	g != ""
	g in input.user.groups
}

reason := sprintf("User %s may not %s cluster %s", [input.user.name, input.action, input.cluster.name]) if not allow
