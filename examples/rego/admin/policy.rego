# Admins see and manage every cluster; everyone else only their own.
# An admin is a JupyterHub admin, a member of group "dask-admins", or a
# name listed here (for Basic auth, which has no groups).
package daskgate.authz

admin_names := {"root"}

is_admin if input.user.admin

is_admin if "dask-admins" in input.user.groups

is_admin if input.user.name in admin_names

default allow := false

allow if input.action in {"create", "list"}

# Dashboards: browsers send no API credentials (input.user.name is "" then),
# so keep them open as upstream does, or restrict them by input.remote_addr.
allow if input.action == "dashboard"

allow if input.cluster.owner == input.user.name

allow if is_admin

reason := sprintf("User %s lacks permissions to %s cluster %s", [input.user.name, input.action, input.cluster.name]) if not allow
