package daskgate.quota_test

import data.daskgate.authz
import data.daskgate.options

req := {"config": {"scheduler_cores": 1}}

test_third_cluster_refused if {
	authz.allow with input as {"action": "create", "user": {"name": "a"}, "request": req, "usage": {"clusters": 1, "cores": 8}}
	not authz.allow with input as {"action": "create", "user": {"name": "a"}, "request": req, "usage": {"clusters": 2, "cores": 9}}
	authz.reason == "Quota exceeded: a already has 2 of 2 clusters" with input as {"action": "create", "user": {"name": "a"}, "request": req, "usage": {"clusters": 2, "cores": 9}}
}

test_cores_cap if {
	not authz.allow with input as {"action": "create", "user": {"name": "a"}, "request": req, "usage": {"clusters": 1, "cores": 16}}
	options.config.cluster_max_cores == 8 with input as {"options": {}}
}

test_quota_for_the_page if {
	authz.quota == {"clusters": 2, "cores": 16} with input as {"action": "quota", "user": {"name": "a"}, "usage": {"clusters": 1}}
}
