module wshub.local/bench/receiver

go 1.22
