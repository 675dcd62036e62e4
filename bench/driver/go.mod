module seqstream/bench/driver

go 1.19
