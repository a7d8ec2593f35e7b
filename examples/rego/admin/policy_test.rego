package daskgate.authz_test

import data.daskgate.authz

cluster := {"name": "c1", "owner": "alice"}

test_admin_stops_anyone if {
	authz.allow with input as {"action": "stop", "cluster": cluster, "user": {"name": "root", "groups": [], "admin": false}}
	authz.allow with input as {"action": "view", "cluster": cluster, "user": {"name": "ops", "groups": ["dask-admins"], "admin": false}}
	authz.allow with input as {"action": "scale", "cluster": cluster, "user": {"name": "hubadmin", "groups": [], "admin": true}}
}

test_others_cannot if {
	not authz.allow with input as {"action": "stop", "cluster": cluster, "user": {"name": "bob", "groups": [], "admin": false}}
	authz.reason == "User bob lacks permissions to stop cluster c1" with input as {"action": "stop", "cluster": cluster, "user": {"name": "bob", "groups": [], "admin": false}}
}
