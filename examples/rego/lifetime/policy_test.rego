package daskgate.options_test

import data.daskgate.options

test_students_get_a_lifetime if {
	options.config.max_lifetime == "8h" with input as {"user": {"name": "s", "groups": ["students"]}, "options": {}}
	options.config == {} with input as {"user": {"name": "t", "groups": ["staff"]}, "options": {}}
}
