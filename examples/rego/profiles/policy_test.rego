package daskgate.options_test

import data.daskgate.options

alice := {"name": "alice", "groups": ["gpu-users"], "admin": false}

bob := {"name": "bob", "groups": [], "admin": false}

test_groups_see_different_sizes if {
	options.fields[0].options == ["small", "medium", "large"] with input as {"user": alice}
	options.fields[0].options == ["small", "medium"] with input as {"user": bob}
}

test_size_becomes_resources if {
	cfg := options.config with input as {"user": bob, "options": {"size": "medium", "image": "pangeo/pangeo-notebook:2024.01.01"}}
	cfg.worker_cores == 2
	cfg.worker_memory == "4 G"
	cfg.cluster_max_workers == 5
}

test_power_users_get_more_workers if {
	cfg := options.config with input as {"user": alice, "options": {"size": "large", "image": "pangeo/ml-notebook:2024.01.01"}}
	cfg.cluster_max_workers == 20
}
