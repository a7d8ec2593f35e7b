package daskgate.shared_test

import data.daskgate.authz
import data.daskgate.options

shared := {"name": "c1", "owner": "alice", "options": {"shared_group": "lab"}}

test_group_members_share if {
	authz.allow with input as {"action": "scale", "cluster": shared, "user": {"name": "bob", "groups": ["lab"]}}
	not authz.allow with input as {"action": "stop", "cluster": shared, "user": {"name": "bob", "groups": ["lab"]}}
	not authz.allow with input as {"action": "view", "cluster": shared, "user": {"name": "eve", "groups": ["other"]}}
}

test_cannot_share_with_foreign_group if {
	options.errors == {"you are not a member of group \"lab\""} with input as {"user": {"name": "eve", "groups": []}, "options": {"shared_group": "lab"}}
}
