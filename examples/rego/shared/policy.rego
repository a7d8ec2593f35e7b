# Group-shared clusters: a cluster created with the option shared_group
# set to one of the owner's groups can be viewed, scaled, adapted and
# opened by every member of that group; only the owner stops it.
package daskgate.options

fields := [{"field": "shared_group", "type": "string", "label": "Share with group (optional)"}]

errors contains sprintf("you are not a member of group %q", [g]) if {
	g := input.options.shared_group
	g != ""
	not g in input.user.groups
}

config := {}
