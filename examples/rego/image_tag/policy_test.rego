package daskgate.options_test

import data.daskgate.options

test_tagged_image_passes if {
	options.config == {"image": "pangeo/base-notebook:2024.01.01"} with input as {"options": {"image": "pangeo/base-notebook:2024.01.01"}}
	count(options.errors) == 0 with input as {"options": {"image": "pangeo/base-notebook:2024.01.01"}}
}

test_untagged_image_is_refused if {
	options.errors == {"When specifying an image you must also provide a tag"} with input as {"options": {"image": "pangeo/base-notebook"}}
}

test_default_is_tagged if {
	contains(options.fields[0]["default"], ":")
}
