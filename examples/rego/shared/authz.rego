package daskgate.authz

default allow := false

allow if input.action in {"create", "list"}

allow if input.cluster.owner == input.user.name

allow if {
	input.action in {"view", "scale", "adapt", "dashboard"}
	g := input.cluster.options.shared_group
	g != ""
	g in input.user.groups
}

reason := sprintf("User %s may not %s cluster %s", [input.user.name, input.action, input.cluster.name]) if not allow
