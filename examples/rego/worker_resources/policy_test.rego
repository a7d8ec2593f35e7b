package daskgate.options_test

import data.daskgate.options

test_memory_in_bytes if {
	cfg := options.config with input as {"options": {"worker_cores": 3, "worker_memory": 1.5, "image": "img:1"}}
	cfg == {"worker_cores": 3, "worker_memory": 1610612736, "image": "img:1"}
}

test_three_fields if {
	[f.field | some f in options.fields] == ["worker_cores", "worker_memory", "image"]
}
