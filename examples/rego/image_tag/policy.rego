# Seed handler 1 (daskhub README): an image option that must carry a tag.
#
#   def option_handler(options):
#       if ":" not in options.image:
#           raise ValueError("When specifying an image you must also provide a tag")
#       return {"image": options.image}
package daskgate.options

fields := [{"field": "image", "type": "string", "label": "Image", "default": "pangeo/base-notebook:2020.07.28"}]

errors contains "When specifying an image you must also provide a tag" if not contains(input.options.image, ":")

config := {"image": input.options.image}
