# Profiles (the 2i2c pattern): what a user may choose depends on their
# groups. Members of "gpu-users" see a bigger size and an extra image;
# everyone else gets small and medium. Sizes map to worker cores/memory.
package daskgate.options

sizes := {
	"small": {"worker_cores": 1, "worker_memory": "2 G"},
	"medium": {"worker_cores": 2, "worker_memory": "4 G"},
	"large": {"worker_cores": 4, "worker_memory": "16 G"},
}

power_user if "gpu-users" in input.user.groups

size_keys := ["small", "medium", "large"] if power_user

else := ["small", "medium"]

images := ["pangeo/pangeo-notebook:2024.01.01", "pangeo/ml-notebook:2024.01.01"] if power_user

else := ["pangeo/pangeo-notebook:2024.01.01"]

fields := [
	{"field": "size", "type": "select", "label": "Worker size", "default": "small", "options": size_keys},
	{"field": "image", "type": "select", "label": "Image", "default": images[0], "options": images},
]

# A user outside the group who posts "large" anyway is refused by field
# validation (it is not among their options) before this runs.
config := object.union(sizes[input.options.size], {
	"image": input.options.image,
	"cluster_max_workers": max_workers,
})

max_workers := 20 if power_user

else := 5
