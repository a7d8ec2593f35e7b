# Seed handler 2 (dask-gateway Helm docs): worker cores, memory and image.
#
#   def option_handler(options):
#       return {"worker_cores": options.worker_cores,
#               "worker_memory": "%fG" % options.worker_memory,
#               "image": options.image}
#   Options(Integer("worker_cores", 2, min=1, max=4, label="Worker Cores"),
#           Float("worker_memory", 4, min=1, max=8, label="Worker Memory (GiB)"),
#           String("image", default="daskgateway/dask-gateway:latest", label="Image"))
package daskgate.options

fields := [
	{"field": "worker_cores", "type": "int", "default": 2, "min": 1, "max": 4, "label": "Worker Cores"},
	{"field": "worker_memory", "type": "float", "default": 4, "min": 1, "max": 8, "label": "Worker Memory (GiB)"},
	{"field": "image", "type": "string", "default": "daskgateway/dask-gateway:latest", "label": "Image"},
]

# GiB as a float becomes bytes: exact, where "%fG" would go through a string.
config := {
	"worker_cores": input.options.worker_cores,
	"worker_memory": round(input.options.worker_memory * 1073741824),
	"image": input.options.image,
}
