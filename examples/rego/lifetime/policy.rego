# Students' clusters stop after 8 hours whatever they do, and after 30
# idle minutes; everyone else keeps the configured defaults.
package daskgate.options

config := {"max_lifetime": "8h", "idle_timeout": "30m"} if "students" in input.user.groups

else := {}
