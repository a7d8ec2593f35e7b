# Built-in authorization, used when no loaded policy declares package
# daskgate.authz: upstream's owner-only rule with its messages.
package daskgate.authz

default allow := false

allow if input.action in {"create", "list"}

# Dashboards are open, as upstream (browsers send no API credentials),
# unless browsers sign in at the hub first: then they are the owner's and
# the admins'.
allow if {
	input.action == "dashboard"
	not input.dashboard_sign_in
}

allow if {
	input.action == "dashboard"
	input.user.admin
}

allow if input.cluster.owner == input.user.name

verb := "stop" if input.action == "stop"

else := "view"

reason := sprintf("User %s lacks permissions to %s cluster %s", [input.user.name, verb, input.cluster.name]) if not allow
