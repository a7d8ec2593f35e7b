package daskgate.options

# Each cluster may use at most 8 cores in total.
config := object.union(input.options, {"cluster_max_cores": 8})
